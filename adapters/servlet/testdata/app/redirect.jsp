<%@ page trimDirectiveWhitespaces="true" %>
<%-- Post/redirect/get: a change just before sendRedirect is saved. --%>
<%
session.setAttribute("flash", "saved");
response.sendRedirect("whoami.jsp");
%>
