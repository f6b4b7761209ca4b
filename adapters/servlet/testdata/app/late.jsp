<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%-- Changes the session before and after writing ?size= bytes of output. --%>
<%
session.setAttribute("early", "yes");
int size = Integer.parseInt(request.getParameter("size"));
StringBuilder line = new StringBuilder();
for (int i = 0; i < 99; i++) {
    line.append('x');
}
for (int n = 0; n < size; n += 100) {
    out.println(line);
}
session.setAttribute("late", "yes");
%>
