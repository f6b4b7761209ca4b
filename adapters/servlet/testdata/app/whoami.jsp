<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- What the adapter gives the app, one fact a line. --%>
id=<%= session.getId() %>
instance=<%= System.getProperty("sessionproxy.test.instance") %>
user=<%= session.getAttribute("user") %>
new=<%= session.isNew() %>
created=<%= session.getCreationTime() %>
requested=<%= request.getRequestedSessionId() %>
requestedValid=<%= request.isRequestedSessionIdValid() %>
