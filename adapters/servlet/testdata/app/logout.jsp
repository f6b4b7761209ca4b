<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- An application's logout; with ?message=, a flash message in a new session. --%>
<%
String old = session.getId();
session.invalidate();
boolean gone = request.getSession(false) == null;
String next = "";
String message = request.getParameter("message");
if (message != null) {
    HttpSession fresh = request.getSession(true);
    fresh.setAttribute("message", message);
    next = fresh.getId();
}
boolean refused = false;
try {
    session.getAttribute("user");
} catch (IllegalStateException e) {
    refused = true;
}
%>
old=<%= old %>
gone=<%= gone %>
next=<%= next %>
invalidatedRefuses=<%= refused %>
