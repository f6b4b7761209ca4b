<%@ page contentType="text/plain; charset=UTF-8" pageEncoding="UTF-8" trimDirectiveWhitespaces="true"
    import="java.util.*" %>
<%-- Every attribute as name|type|value, sorted by name. --%>
<%
List<String> names = Collections.list(session.getAttributeNames());
Collections.sort(names);
for (String name : names) {
    Object v = session.getAttribute(name);
    out.println(name + "|" + (v == null ? "null" : v.getClass().getSimpleName()) + "|" + v);
}
%>
