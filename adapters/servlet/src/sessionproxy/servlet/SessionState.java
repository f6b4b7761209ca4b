package sessionproxy.servlet;

import jakarta.servlet.ServletContext;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One request's session: what the proxy said in the X-Session-* request
 * headers, what the app made of it, and the response headers that tell the
 * proxy the difference (CONTRACT.md section 3). It is kept as a request
 * attribute so that an error page's dispatch sees the same session.
 */
final class SessionState {
    static final String ATTRIBUTE = SessionState.class.getName();
    private static final String ATTR_PREFIX = "x-session-attr-";

    final ServletContext context;
    /** The proxy's ID; null when the request did not come through the proxy. */
    final String proxyId;
    /** The proxy holds a session under proxyId (it is not one it proposes). */
    final boolean stored;
    final long created;
    final long requestTime = System.currentTimeMillis();
    final int maxInactiveInterval;
    /** Each incoming attribute's decoded value and its value as sent. */
    final Map<String, Object> incoming = new LinkedHashMap<>();
    final Map<String, String> incomingWire = new LinkedHashMap<>();
    /**
     * Each incoming attribute's header name as the proxy stores it: a name
     * that another backend wrote outside the encoding ("plain-name") is
     * changed or removed under that name, not under its re-encoding.
     */
    final Map<String, String> incomingHeader = new LinkedHashMap<>();
    /** Each stored name's value length, as the proxy sent it (bytes: headers are ISO-8859-1). */
    private final Map<String, Integer> incomingSize = new LinkedHashMap<>();
    /** The proxy's session.max_size in bytes; 0: no check here (the proxy's 502). */
    private final int maxSize;

    /** The session the app holds, or null before it asked for one. */
    private ProxiedSession current;
    /** The app invalidated the proxy's session in this request. */
    private boolean invalidated;
    /** The ID the app's session moved to (changeSessionId), or null. */
    private String rotateTo;
    /** The headers were written: later changes are lost. */
    private boolean sent;
    private boolean warned;

    SessionState(HttpServletRequest req, ServletContext context, int maxInactiveInterval, int maxSize) {
        this.context = context;
        this.maxSize = maxSize;
        this.maxInactiveInterval = maxInactiveInterval;
        String id = req.getHeader("X-Session-Id");
        this.proxyId = id == null || id.isEmpty() ? null : id;
        this.stored = proxyId != null && !"1".equals(req.getHeader("X-Session-New"));
        long c = requestTime;
        String h = req.getHeader("X-Session-Created");
        if (h != null) {
            try {
                c = Long.parseLong(h.trim());
            } catch (NumberFormatException e) {
                // keep the request's time: an unreadable header is the proxy's bug, not the app's
            }
        }
        this.created = c;
        if (proxyId == null) {
            return; // not through the proxy: anything that looks like session headers is not the proxy's
        }
        for (Enumeration<String> names = req.getHeaderNames(); names.hasMoreElements();) {
            String name = names.nextElement();
            if (name.length() > ATTR_PREFIX.length()
                    && name.toLowerCase(Locale.ROOT).startsWith(ATTR_PREFIX)) {
                String value = req.getHeader(name);
                String attr = Codec.decodeName(name.substring(ATTR_PREFIX.length()));
                incomingSize.put(name.substring(ATTR_PREFIX.length()).toLowerCase(Locale.ROOT), value.length());
                if (!incoming.containsKey(attr)) {
                    incoming.put(attr, Codec.decodeValue(value));
                    incomingWire.put(attr, wire(incoming.get(attr), value));
                    incomingHeader.put(attr, name.substring(ATTR_PREFIX.length()).toLowerCase(Locale.ROOT));
                }
            }
        }
    }

    /** What this adapter would write for a value it read as {@code sent}. */
    private static String wire(Object value, String sent) {
        try {
            return Codec.encodeValue(value);
        } catch (IllegalArgumentException e) {
            return sent; // cannot happen for a decoded value
        }
    }

    /** HttpServletRequest.getSession(create). */
    synchronized ProxiedSession session(boolean create) {
        if (current != null && current.valid()) {
            return current;
        }
        if (current == null && !invalidated && (stored || create)) {
            String id = proxyId != null ? proxyId : Codec.newId();
            current = ProxiedSession.create(this, id, created, !stored, incoming);
            return current;
        }
        if (!create) {
            return null;
        }
        // A new session after invalidate(): the proxy starts it under the ID
        // the app sees now (X-Session-Invalidate with X-Session-Rotate).
        current = ProxiedSession.create(this, Codec.newId(), System.currentTimeMillis(), true, null);
        return current;
    }

    /** HttpServletRequest.changeSessionId(). */
    synchronized String changeId() {
        if (current == null || !current.valid()) {
            throw new IllegalStateException("changeSessionId: the request has no session");
        }
        String id = Codec.newId();
        current.id = id;
        if (!invalidated) {
            rotateTo = id;
        }
        changed();
        return id;
    }

    /** Called by the session when invalidate() ends it. */
    synchronized void ended(ProxiedSession s) {
        if (s.fresh) {
            return; // a session started after invalidate() in this request: never stored
        }
        invalidated = true;
        rotateTo = null;
        changed();
    }

    /** Called on each change, so that a change that will be lost is logged once. */
    synchronized void changed() {
        if (sent && !warned) {
            warned = true;
            context.log("sessionproxy: a session change after the response started was not saved"
                    + " (the session travels in the response headers; see adapters/servlet/README.md)");
        }
    }

    /** The response was reset, and the session headers with it: send them again. */
    synchronized void unsend() {
        sent = false;
    }

    /**
     * Drops the request's changes: the app failed with an exception, and the
     * container answers 500 (as Django skips saving on a 500).
     */
    synchronized void discard() {
        sent = true;
        warned = true;
    }

    String requestedId() {
        return stored ? proxyId : null;
    }

    synchronized boolean requestedIdValid() {
        return stored && !invalidated && rotateTo == null;
    }

    /**
     * Writes the session's changes as X-Session-* headers of {@code resp},
     * once; later calls do nothing.
     *
     * @throws IllegalArgumentException if a value was changed in place into
     *     something JSON cannot hold
     * @throws IllegalStateException if the session is over the proxy's
     *     max_size: nothing is sent
     */
    synchronized void send(HttpServletResponse resp) {
        if (sent) {
            return;
        }
        sent = true;
        if (proxyId == null) {
            return; // no proxy to tell
        }
        List<String[]> headers = headers();
        long size = storedSize(headers);
        if (maxSize > 0 && size > maxSize) {
            // The proxy would refuse the update (502): fail the request the
            // servlet way instead, before anything is committed, so that
            // the container's error page goes out; the session stays as
            // the proxy has it.
            warned = true;
            throw new IllegalStateException("sessionproxy: the session is " + size
                    + " bytes, over the proxy's max_size of " + maxSize + "; it was not saved");
        }
        if (!headers.isEmpty() && resp.isCommitted()) {
            // The app wrote to the container's response around the adapter
            // (an unwrapped response): the container drops the headers.
            warned = true;
            context.log("sessionproxy: the response was committed around the adapter;"
                    + " this request's session changes were not saved");
            return;
        }
        for (String[] h : headers) {
            resp.addHeader(h[0], h[1]);
        }
    }

    /**
     * The size, at least, of the proxy's stored encoding of the session
     * that {@code headers} make of the incoming one, or 0 when they set
     * nothing (no update the proxy could refuse for its size). Each name
     * and value counts with its length prefix (a varint), plus 15 bytes:
     * the least the proxy's encoding spends besides them (format, flags,
     * version, creation and last-use times, count; it also keeps the
     * expiry), so that the adapter never refuses what the proxy would
     * store (sessionstore's AppendEncode).
     */
    long storedSize(List<String[]> headers) {
        Map<String, Integer> sizes = new LinkedHashMap<>(incomingSize);
        int sets = 0;
        for (String[] h : headers) {
            if (h[0].equals("X-Session-Invalidate")) {
                sizes.clear();
            } else if (h[0].startsWith("X-Session-Set-")) {
                sizes.put(h[0].substring("X-Session-Set-".length()), h[1].length());
                sets++;
            } else if (h[0].equals("X-Session-Unset")) {
                for (String n : h[1].split(", ")) {
                    sizes.remove(n);
                }
            }
        }
        if (sets == 0) {
            return 0;
        }
        long n = 15;
        for (Map.Entry<String, Integer> e : sizes.entrySet()) {
            n += varintLen(e.getKey().length()) + e.getKey().length() + varintLen(e.getValue()) + e.getValue();
        }
        return n;
    }

    private static int varintLen(long n) {
        int len = 1;
        while (n >= 0x80) {
            n >>>= 7;
            len++;
        }
        return len;
    }

    /** The response headers that turn the incoming session into the current one. */
    List<String[]> headers() {
        List<String[]> out = new ArrayList<>();
        if (invalidated) {
            out.add(new String[] {"X-Session-Invalidate", "1"});
            if (current != null && current.valid() && !current.attrs.isEmpty()) {
                for (Map.Entry<String, Object> e : current.attrs.entrySet()) {
                    out.add(new String[] {"X-Session-Set-" + Codec.encodeName(e.getKey()),
                            Codec.encodeValue(e.getValue())});
                }
                out.add(new String[] {"X-Session-Rotate", current.id});
                if (current.maxInactiveIntervalSet) {
                    out.add(new String[] {"X-Session-Max-Age", current.maxAgeHeader()});
                }
            }
            return out;
        }
        if (current == null) {
            return out;
        }
        StringBuilder gone = new StringBuilder();
        for (String name : incomingWire.keySet()) {
            if (!current.attrs.containsKey(name)) {
                gone.append(gone.length() == 0 ? "" : ", ").append(incomingHeader.get(name));
            }
        }
        // Every value is compared, not only those set: an in-place change to
        // a List or Map is saved without another setAttribute.
        for (Map.Entry<String, Object> e : current.attrs.entrySet()) {
            String enc = Codec.encodeValue(e.getValue());
            if (!enc.equals(incomingWire.get(e.getKey()))) {
                String header = incomingHeader.get(e.getKey());
                out.add(new String[] {"X-Session-Set-" + (header != null ? header : Codec.encodeName(e.getKey())), enc});
            }
        }
        if (gone.length() > 0) {
            out.add(new String[] {"X-Session-Unset", gone.toString()});
        }
        if (rotateTo != null) {
            out.add(new String[] {"X-Session-Rotate", rotateTo});
        }
        if (current.maxInactiveIntervalSet) {
            out.add(new String[] {"X-Session-Max-Age", current.maxAgeHeader()});
        }
        return out;
    }
}
