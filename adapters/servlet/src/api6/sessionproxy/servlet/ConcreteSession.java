package sessionproxy.servlet;

import java.util.Map;

/** The session for Servlet 6.0 and later (built against their API jar). */
final class ConcreteSession extends ProxiedSession {
    ConcreteSession(SessionState state, String id, long created, boolean isNew, Map<String, Object> attrs) {
        super(state, id, created, isNew, attrs);
    }
}
