package sessionproxy.servlet;

import jakarta.servlet.http.HttpSessionContext;
import java.util.Map;

/**
 * The session for Servlet 5.0 (built against its API jar, e.g. Debian's
 * libjakarta-servlet-api-java), which still has getSessionContext(). The jar
 * runs on Servlet 6.0 containers too, which lack HttpSessionContext: nothing
 * here makes the JVM load that type unless getSessionContext() runs, and 6.0
 * has no way to call it (an implementation of it in this class, even an
 * anonymous one, would be loaded when this class is verified).
 */
@SuppressWarnings("deprecation")
final class ConcreteSession extends ProxiedSession {
    ConcreteSession(SessionState state, String id, long created, boolean isNew, Map<String, Object> attrs) {
        super(state, id, created, isNew, attrs);
    }

    /** Deprecated since Servlet 2.1, and empty, as in Tomcat. */
    @Override
    public HttpSessionContext getSessionContext() {
        return (HttpSessionContext) EmptySessionContext.create();
    }
}
