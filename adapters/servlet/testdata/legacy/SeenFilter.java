package legacytest;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpSession;
import java.io.IOException;

/**
 * An app's own filter, declared in web.xml, that looks at the session the
 * way a security filter does: it says in a response header which session it
 * saw (the adapter's is a sessionproxy.servlet class).
 */
public final class SeenFilter implements Filter {
    @Override
    public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain)
            throws IOException, ServletException {
        HttpSession s = ((HttpServletRequest) req).getSession(false);
        ((HttpServletResponse) resp).setHeader("X-Seen-Session",
                s == null ? "none" : s.getId() + " " + s.getClass().getName());
        chain.doFilter(req, resp);
    }
}
