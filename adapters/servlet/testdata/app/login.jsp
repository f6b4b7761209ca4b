<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- An application's login: store the user, then move the session to a new ID
     against session fixation, as the servlet API has it since 3.1. --%>
<%
String before = session.getId();
session.setAttribute("user", request.getParameter("user"));
String returned = request.changeSessionId();
%>
before=<%= before %>
returned=<%= returned %>
after=<%= session.getId() %>
sameObject=<%= request.getSession(false) == session %>
