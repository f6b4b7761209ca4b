<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- "Remember me": setMaxInactiveInterval(n) is the session's own ttl at the
     proxy, with a persistent cookie; the filter's default (1800) goes back. --%>
<%
session.setAttribute("user", "ann");
session.setMaxInactiveInterval(Integer.parseInt(request.getParameter("n")));
%>
id=<%= session.getId() %>
maxInactiveInterval=<%= session.getMaxInactiveInterval() %>
