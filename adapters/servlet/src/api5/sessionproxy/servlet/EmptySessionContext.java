package sessionproxy.servlet;

import jakarta.servlet.http.HttpSession;
import jakarta.servlet.http.HttpSessionContext;
import java.util.Collections;
import java.util.Enumeration;

/** Servlet 5.0's deprecated HttpSessionContext, empty as in Tomcat. */
@SuppressWarnings("deprecation")
final class EmptySessionContext implements HttpSessionContext {
    /** Typed Object, so that ConcreteSession's verification loads nothing. */
    static Object create() {
        return new EmptySessionContext();
    }

    @Override
    public HttpSession getSession(String id) {
        return null;
    }

    @Override
    public Enumeration<String> getIds() {
        return Collections.emptyEnumeration();
    }
}
