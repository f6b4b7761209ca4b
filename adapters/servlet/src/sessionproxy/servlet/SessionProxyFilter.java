package sessionproxy.servlet;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;

/**
 * Gives the app the session sessionproxy sent in X-Session-* request headers
 * through the servlet API ({@code request.getSession()}, JSP's
 * {@code session}), and sends its changes back as X-Session-* response
 * headers (CONTRACT.md sections 3 and 13). {@link SessionProxyListener}
 * registers it ahead of every other filter; it may also be declared in
 * web.xml (filter name "sessionproxy", dispatchers REQUEST, ERROR, ASYNC).
 *
 * <p>Parameters (filter init-params, or context-params prefixed
 * {@code sessionproxy.}): {@code bufferSize}, how much output is held
 * before the session headers must go (default 262144 bytes or characters),
 * {@code maxSize}, the proxy's session.max_size (default 65536 bytes: a
 * session larger than that fails the request with an
 * IllegalStateException, the container's 500, instead of the proxy's 502;
 * 0 leaves the check to the proxy), and {@code maxInactiveInterval}, what
 * {@code HttpSession.getMaxInactiveInterval()} reports, in seconds (default
 * 1800: the proxy's default session.ttl, 30m).
 */
public final class SessionProxyFilter implements Filter {
    static final int DEFAULT_BUFFER_SIZE = 256 * 1024;
    static final int DEFAULT_MAX_INACTIVE_INTERVAL = 1800;
    /** The proxy's default session.max_size. */
    static final int DEFAULT_MAX_SIZE = 64 * 1024;

    private ServletContext context;
    private int bufferSize = DEFAULT_BUFFER_SIZE;
    private int maxInactiveInterval = DEFAULT_MAX_INACTIVE_INTERVAL;
    private int maxSize = DEFAULT_MAX_SIZE;

    @Override
    public void init(FilterConfig config) throws ServletException {
        context = config.getServletContext();
        bufferSize = param(config, "bufferSize", DEFAULT_BUFFER_SIZE);
        maxInactiveInterval = param(config, "maxInactiveInterval", DEFAULT_MAX_INACTIVE_INTERVAL);
        maxSize = param(config, "maxSize", DEFAULT_MAX_SIZE);
    }

    private static int param(FilterConfig config, String name, int def) throws ServletException {
        String v = config.getInitParameter(name);
        if (v == null) {
            v = config.getServletContext().getInitParameter("sessionproxy." + name);
        }
        if (v == null) {
            return def;
        }
        try {
            int n = Integer.parseInt(v.trim());
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new ServletException("sessionproxy: " + name + " must be a number >= 0, got \"" + v + "\"");
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain)
            throws IOException, ServletException {
        if (!(req instanceof HttpServletRequest) || !(resp instanceof HttpServletResponse)) {
            chain.doFilter(req, resp);
            return;
        }
        HttpServletRequest hreq = (HttpServletRequest) req;
        HttpServletResponse hresp = (HttpServletResponse) resp;
        SessionState state = (SessionState) req.getAttribute(SessionState.ATTRIBUTE);
        if (state != null) {
            // An error page's or an async dispatch of a request this filter
            // has seen: the same session. Its headers went with sendError
            // or when the servlet returned; what changes now is lost (and logged).
            chain.doFilter(hreq instanceof ProxiedRequest ? hreq : new ProxiedRequest(hreq, state), resp);
            state.send(hresp);
            return;
        }
        state = new SessionState(hreq, context != null ? context : req.getServletContext(), maxInactiveInterval, maxSize);
        req.setAttribute(SessionState.ATTRIBUTE, state);
        ProxiedRequest preq = new ProxiedRequest(hreq, state);
        HoldingResponse held = new HoldingResponse(hresp, state, bufferSize);
        boolean ok = false;
        try {
            chain.doFilter(preq, held);
            ok = true;
        } finally {
            if (!ok) {
                state.discard();
            }
        }
        // With async processing the response goes on after this returns:
        // the session is sent now, and what the async part writes is not held.
        // A session over max_size throws here, before the held output goes:
        // the container's error page (500) answers instead.
        held.release();
    }

    @Override
    public void destroy() {}
}
