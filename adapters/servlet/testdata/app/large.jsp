<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- Sets an attribute of ?size= characters. --%>
<%
StringBuilder v = new StringBuilder();
for (int i = 0; i < Integer.parseInt(request.getParameter("size")); i++) {
    v.append((char) ('a' + i % 26));
}
session.setAttribute("large", v.toString());
%>
id=<%= session.getId() %>
