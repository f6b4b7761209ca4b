package sessionproxy.servlet;

import jakarta.servlet.ServletContext;
import jakarta.servlet.http.HttpSession;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An {@link HttpSession} over the session the proxy sent with the request.
 * {@link #getId()} is the proxy's session ID (the cookie's value), and
 * {@link #getCreationTime()} the proxy's creation time, so every backend
 * behind the proxy shows the same. Changes are kept here and written back as
 * response headers by {@link SessionState#send}.
 *
 * <p>Values must be what {@link Json} writes; anything else is refused by
 * {@link #setAttribute} with an {@link IllegalArgumentException}, as Tomcat
 * refuses a non-serializable attribute in a distributable app. No session or
 * binding listeners are called.
 *
 * <p>Abstract for the one method Servlet 5.0 has and 6.0 removed
 * ({@code getSessionContext()}, whose type 6.0 no longer has): the Makefile
 * compiles {@code src/api5/} or {@code src/api6/}, whichever fits the API
 * jar it builds against, and each defines {@code ConcreteSession}.
 */
abstract class ProxiedSession implements HttpSession {
    private final SessionState state;
    /** Changed by changeSessionId. */
    volatile String id;
    private final long created;
    private final boolean isNew;
    /** Started after invalidate() in the same request. */
    final boolean fresh;
    final Map<String, Object> attrs;
    private volatile boolean valid = true;
    private volatile int maxInactiveInterval;
    /** setMaxInactiveInterval was called in this request. */
    volatile boolean maxInactiveIntervalSet;

    ProxiedSession(SessionState state, String id, long created, boolean isNew, Map<String, Object> attrs) {
        this.state = state;
        this.id = id;
        this.created = created;
        this.isNew = isNew;
        this.fresh = attrs == null;
        this.attrs = Collections.synchronizedMap(new LinkedHashMap<>(attrs == null ? Map.of() : attrs));
        this.maxInactiveInterval = state.maxInactiveInterval;
    }

    /** Returns the session class of the API the jar was built against. */
    static ProxiedSession create(SessionState state, String id, long created, boolean isNew,
            Map<String, Object> attrs) {
        return new ConcreteSession(state, id, created, isNew, attrs);
    }

    boolean valid() {
        return valid;
    }

    private void check(String method) {
        if (!valid) {
            throw new IllegalStateException(method + ": session already invalidated");
        }
    }

    @Override
    public long getCreationTime() {
        check("getCreationTime");
        return created;
    }

    @Override
    public String getId() {
        return id;
    }

    /**
     * The time this request began: the proxy does not tell when the session
     * was last used (it keeps that to expire it).
     */
    @Override
    public long getLastAccessedTime() {
        check("getLastAccessedTime");
        return state.requestTime;
    }

    @Override
    public ServletContext getServletContext() {
        return state.context;
    }

    /**
     * Gives the session its own idle lifetime at the proxy, and a persistent
     * cookie of that Max-Age ("remember me": X-Session-Max-Age, CONTRACT.md
     * section 16), which the proxy keeps with the session. The filter's
     * maxInactiveInterval (the proxy's session.ttl) goes back to the default
     * and a session cookie; zero or less, "never", is the longest the proxy
     * takes (400 days).
     */
    @Override
    public void setMaxInactiveInterval(int interval) {
        maxInactiveInterval = interval;
        maxInactiveIntervalSet = true;
    }

    /** X-Session-Max-Age's value for what setMaxInactiveInterval set. */
    String maxAgeHeader() {
        int n = maxInactiveInterval;
        if (n == state.maxInactiveInterval) {
            return "0";
        }
        return Integer.toString(n <= 0 ? MAX_TTL : Math.min(n, MAX_TTL));
    }

    /** The longest X-Session-Max-Age the proxy takes: 400 days. */
    static final int MAX_TTL = 400 * 24 * 3600;

    /**
     * What setMaxInactiveInterval set in this request, else the filter's
     * maxInactiveInterval parameter (the proxy's session.ttl): the proxy
     * does not tell a session's own.
     */
    @Override
    public int getMaxInactiveInterval() {
        return maxInactiveInterval;
    }

    @Override
    public Object getAttribute(String name) {
        check("getAttribute");
        return attrs.get(name);
    }

    @Override
    public Enumeration<String> getAttributeNames() {
        check("getAttributeNames");
        synchronized (attrs) {
            return Collections.enumeration(new ArrayList<>(attrs.keySet()));
        }
    }

    /**
     * Sets {@code name} to {@code value}; a null value removes it.
     *
     * @throws IllegalArgumentException if the value is not one JSON holds
     *     (String, Number, Boolean, null, List, Map, arrays) or the name is
     *     longer than sessionproxy takes once encoded
     */
    @Override
    public void setAttribute(String name, Object value) {
        check("setAttribute");
        if (name == null) {
            throw new IllegalArgumentException("setAttribute: the name is null");
        }
        if (value == null) {
            removeAttribute(name);
            return;
        }
        Codec.encodeName(name); // refuse now, not when the response is sent
        Codec.encodeValue(value);
        attrs.put(name, value);
        state.changed();
    }

    @Override
    public void removeAttribute(String name) {
        check("removeAttribute");
        if (attrs.remove(name) != null) {
            state.changed();
        }
    }

    /** Ends the session: the proxy deletes it and expires the cookie. */
    @Override
    public void invalidate() {
        check("invalidate");
        valid = false;
        attrs.clear();
        state.ended(this);
    }

    @Override
    public boolean isNew() {
        check("isNew");
        return isNew;
    }

    // The methods Servlet 6.0 removed, for Servlet 5.0 containers (Tomcat 10.0).

    /** Deprecated since Servlet 2.2: {@link #getAttribute}. */
    @SuppressWarnings("deprecation")
    public Object getValue(String name) {
        return getAttribute(name);
    }

    /** Deprecated since Servlet 2.2: {@link #getAttributeNames}. */
    @SuppressWarnings("deprecation")
    public String[] getValueNames() {
        check("getValueNames");
        synchronized (attrs) {
            return attrs.keySet().toArray(new String[0]);
        }
    }

    /** Deprecated since Servlet 2.2: {@link #setAttribute}. */
    @SuppressWarnings("deprecation")
    public void putValue(String name, Object value) {
        setAttribute(name, value);
    }

    /** Deprecated since Servlet 2.2: {@link #removeAttribute}. */
    @SuppressWarnings("deprecation")
    public void removeValue(String name) {
        removeAttribute(name);
    }
}
