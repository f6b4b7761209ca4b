package sessionproxy.servlet;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.FilterRegistration;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletContextEvent;
import jakarta.servlet.ServletContextListener;
import jakarta.servlet.SessionTrackingMode;
import java.util.EnumSet;

/**
 * Installs the adapter in a web app: declared by the jar's
 * META-INF/web-fragment.xml, so that the jar in WEB-INF/lib is all it takes
 * (or in web.xml, for an app whose web.xml is metadata-complete).
 *
 * <p>It registers {@link SessionProxyFilter} for every path ahead of the
 * filters web.xml declares (a web-fragment's own filter would come after
 * them, and a security filter there would meet the container's session),
 * and turns the container's session tracking off, so that nothing that
 * still reaches the container's session manager sets a JSESSIONID cookie or
 * rewrites URLs with one.
 */
public final class SessionProxyListener implements ServletContextListener {
    /** The filter's name; one declared in web.xml under it is left as it is. */
    public static final String FILTER_NAME = "sessionproxy";

    @Override
    public void contextInitialized(ServletContextEvent event) {
        ServletContext c = event.getServletContext();
        try {
            c.setSessionTrackingModes(EnumSet.noneOf(SessionTrackingMode.class));
        } catch (RuntimeException e) {
            c.log("sessionproxy: could not turn the container's session tracking off", e);
        }
        FilterRegistration.Dynamic f = c.addFilter(FILTER_NAME, SessionProxyFilter.class);
        if (f == null) {
            c.log("sessionproxy: filter \"" + FILTER_NAME + "\" is declared by the app; using that one");
            return;
        }
        f.setAsyncSupported(true);
        f.addMappingForUrlPatterns(EnumSet.of(DispatcherType.REQUEST, DispatcherType.ERROR, DispatcherType.ASYNC),
                false, "/*");
    }

    @Override
    public void contextDestroyed(ServletContextEvent event) {}
}
