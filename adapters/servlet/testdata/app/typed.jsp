<%@ page contentType="text/plain; charset=UTF-8" pageEncoding="UTF-8" trimDirectiveWhitespaces="true"
    import="java.util.*" %>
<%-- Values of several types, read back with their types by any backend. --%>
<%
session.setAttribute("pojun.tech", "José 🙂");
session.setAttribute("userId", 3);
session.setAttribute("big", 1L << 40);
session.setAttribute("cart", Arrays.asList(1, "two", 3.5, null));
Map<String, Object> prefs = new LinkedHashMap<>();
prefs.put("items", Arrays.asList(1, 2));
prefs.put("ok", true);
prefs.put("name", "Zoë");
session.setAttribute("prefs", prefs);
String obj;
try {
    session.setAttribute("obj", new StringBuilder("not JSON"));
    obj = "stored";
} catch (IllegalArgumentException e) {
    obj = "refused";
}
%>
obj=<%= obj %>
