package sessionproxy.servlet;

import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpSession;

/**
 * The request as the app sees it: every way to a session leads to the
 * proxy's. JSP's implicit {@code session} asks the request too, and
 * includes and forwards wrap this wrapper, so the container's own session
 * manager is never reached and never sets a JSESSIONID.
 */
final class ProxiedRequest extends HttpServletRequestWrapper {
    private final SessionState state;

    ProxiedRequest(HttpServletRequest req, SessionState state) {
        super(req);
        this.state = state;
    }

    @Override
    public HttpSession getSession() {
        return state.session(true);
    }

    /**
     * Returns the session, or null if the proxy holds none for this client
     * and {@code create} is false (as with the container's own sessions, a
     * new session exists once asked for with {@code create}).
     */
    @Override
    public HttpSession getSession(boolean create) {
        return state.session(create);
    }

    /**
     * Moves the session to a new ID that this adapter draws and the proxy
     * takes (X-Session-Rotate: id), keeping its attributes; the old ID is
     * worthless from then on. Call it after login.
     */
    @Override
    public String changeSessionId() {
        return state.changeId();
    }

    /** The ID of the session the client's cookie named, if the proxy holds it. */
    @Override
    public String getRequestedSessionId() {
        return state.requestedId();
    }

    @Override
    public boolean isRequestedSessionIdValid() {
        return state.requestedIdValid();
    }

    @Override
    public boolean isRequestedSessionIdFromCookie() {
        return state.requestedId() != null;
    }

    @Override
    public boolean isRequestedSessionIdFromURL() {
        return false;
    }

    /** For Servlet 5.0 containers (removed in 6.0). */
    @SuppressWarnings("deprecation")
    public boolean isRequestedSessionIdFromUrl() {
        return false;
    }
}
