<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- Code that unwraps the request reaches Tomcat's own session manager: with the
     adapter's listener it creates a session but never a JSESSIONID cookie. --%>
<%
ServletRequest inner = ((ServletRequestWrapper) request).getRequest();
HttpSession own = ((HttpServletRequest) inner).getSession(true);
%>
wrapped=<%= request.getClass().getName() %>
ownIsOther=<%= own != session && !own.getId().equals(session.getId()) %>
url=<%= response.encodeURL("whoami.jsp") %>
