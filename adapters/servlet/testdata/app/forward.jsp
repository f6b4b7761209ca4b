<%@ page trimDirectiveWhitespaces="true" %>
<%-- A change, then a forward: the forwarded page sees the same session. --%>
<% session.setAttribute("user", "via-forward"); %>
<jsp:forward page="whoami.jsp"/>
