package sessionproxy.servlet;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON that session values are written in (CONTRACT.md section 13): just
 * enough of it for the values every adapter shares, so that the jar needs
 * nothing beyond the servlet API.
 *
 * <p>Written: {@code null}, {@link String}, {@link Character}, {@link Boolean},
 * {@link Number} (not NaN or infinite), {@link Collection} and arrays of these
 * (as JSON arrays), and {@link Map} with {@link String} keys. Anything else is
 * refused with an {@link IllegalArgumentException}, as Tomcat refuses a
 * non-serializable attribute of a distributable app.
 *
 * <p>Read: an integer as {@link Integer} when it fits, else {@link Long}, else
 * {@link BigInteger}; any other number as {@link Double}; arrays as
 * {@link ArrayList}; objects as {@link LinkedHashMap}. So
 * {@code (Integer) session.getAttribute("count")} works for a counter any
 * language wrote.
 */
final class Json {
    /** Deeper nesting is not read as JSON (a plain string instead). */
    static final int MAX_DEPTH = 512;

    private Json() {}

    /** Returns the JSON text of {@code v}, without spaces. */
    static String encode(Object v) {
        StringBuilder b = new StringBuilder();
        write(b, v, 0);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalArgumentException("session value nested deeper than " + MAX_DEPTH);
        }
        if (v == null) {
            b.append("null");
        } else if (v instanceof String || v instanceof Character) {
            quote(b, v.toString());
        } else if (v instanceof Boolean) {
            b.append(v.toString());
        } else if (v instanceof Integer || v instanceof Long || v instanceof Short
                || v instanceof Byte || v instanceof BigInteger) {
            b.append(v.toString());
        } else if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new IllegalArgumentException("session value " + d + " is not a JSON number");
            }
            b.append(v instanceof Float ? Float.toString((Float) v) : Double.toString(d));
        } else if (v instanceof BigDecimal) {
            b.append(((BigDecimal) v).toString());
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!(e.getKey() instanceof String)) {
                    throw new IllegalArgumentException("session value: a map key must be a String, not "
                            + (e.getKey() == null ? "null" : e.getKey().getClass().getName()));
                }
                if (!first) {
                    b.append(',');
                }
                first = false;
                quote(b, (String) e.getKey());
                b.append(':');
                write(b, e.getValue(), depth + 1);
            }
            b.append('}');
        } else if (v instanceof Collection) {
            b.append('[');
            boolean first = true;
            for (Object o : (Collection<?>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, o, depth + 1);
            }
            b.append(']');
        } else if (v.getClass().isArray()) {
            b.append('[');
            int n = java.lang.reflect.Array.getLength(v);
            for (int i = 0; i < n; i++) {
                if (i > 0) {
                    b.append(',');
                }
                write(b, java.lang.reflect.Array.get(v, i), depth + 1);
            }
            b.append(']');
        } else {
            throw new IllegalArgumentException("sessionproxy keeps session values as JSON: String, Number, "
                    + "Boolean, null, List, Map; not " + v.getClass().getName());
        }
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
            case '"': b.append("\\\""); break;
            case '\\': b.append("\\\\"); break;
            case '\n': b.append("\\n"); break;
            case '\r': b.append("\\r"); break;
            case '\t': b.append("\\t"); break;
            case '\b': b.append("\\b"); break;
            case '\f': b.append("\\f"); break;
            default:
                if (c < 0x20) {
                    b.append(String.format("\\u%04x", (int) c));
                } else {
                    b.append(c);
                }
            }
        }
        b.append('"');
    }

    /** Thrown by {@link #decode} for text that is not JSON. */
    static final class NotJson extends Exception {
        private static final long serialVersionUID = 1L;

        NotJson(String why) {
            super(why, null, false, false);
        }
    }

    /** Returns the value the JSON text {@code s} holds. */
    static Object decode(String s) throws NotJson {
        Json.Reader r = new Json.Reader(s);
        r.space();
        Object v = r.value(0);
        r.space();
        if (r.i != s.length()) {
            throw new NotJson("text after the value");
        }
        return v;
    }

    private static final class Reader {
        final String s;
        int i;

        Reader(String s) {
            this.s = s;
        }

        void space() {
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                i++;
            }
        }

        char peek() throws NotJson {
            if (i >= s.length()) {
                throw new NotJson("unexpected end");
            }
            return s.charAt(i);
        }

        void expect(char c) throws NotJson {
            if (peek() != c) {
                throw new NotJson("expected " + c);
            }
            i++;
        }

        Object value(int depth) throws NotJson {
            if (depth > MAX_DEPTH) {
                throw new NotJson("nested too deep");
            }
            char c = peek();
            switch (c) {
            case '{': {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                space();
                if (peek() == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    space();
                    if (peek() != '"') {
                        throw new NotJson("expected a key");
                    }
                    String k = string();
                    space();
                    expect(':');
                    space();
                    m.put(k, value(depth + 1));
                    space();
                    if (peek() == ',') {
                        i++;
                        continue;
                    }
                    expect('}');
                    return m;
                }
            }
            case '[': {
                i++;
                List<Object> l = new ArrayList<>();
                space();
                if (peek() == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    space();
                    l.add(value(depth + 1));
                    space();
                    if (peek() == ',') {
                        i++;
                        continue;
                    }
                    expect(']');
                    return l;
                }
            }
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            default:
                return number();
            }
        }

        Object literal(String word, Object v) throws NotJson {
            if (!s.startsWith(word, i)) {
                throw new NotJson("bad literal");
            }
            i += word.length();
            return v;
        }

        String string() throws NotJson {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = peek();
                i++;
                if (c == '"') {
                    return b.toString();
                }
                if (c < 0x20) {
                    throw new NotJson("control character in a string");
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = peek();
                i++;
                switch (e) {
                case '"': b.append('"'); break;
                case '\\': b.append('\\'); break;
                case '/': b.append('/'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'n': b.append('\n'); break;
                case 'r': b.append('\r'); break;
                case 't': b.append('\t'); break;
                case 'u':
                    if (i + 4 > s.length()) {
                        throw new NotJson("short \\u escape");
                    }
                    int cp = 0;
                    for (int k = 0; k < 4; k++) {
                        char h = s.charAt(i + k);
                        // ASCII hex digits only: Character.digit takes other scripts' digits too.
                        int d = h < 0x80 ? Character.digit(h, 16) : -1;
                        if (d < 0) {
                            throw new NotJson("bad \\u escape");
                        }
                        cp = cp * 16 + d;
                    }
                    i += 4;
                    b.append((char) cp);
                    break;
                default:
                    throw new NotJson("bad escape");
                }
            }
        }

        Object number() throws NotJson {
            int start = i;
            if (i < s.length() && s.charAt(i) == '-') {
                i++;
            }
            int intStart = i;
            digits();
            if (i == intStart || (s.charAt(intStart) == '0' && i - intStart > 1)) {
                throw new NotJson("bad number");
            }
            boolean integer = true;
            if (i < s.length() && s.charAt(i) == '.') {
                integer = false;
                i++;
                int f = i;
                digits();
                if (i == f) {
                    throw new NotJson("bad fraction");
                }
            }
            if (i < s.length() && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
                integer = false;
                i++;
                if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
                    i++;
                }
                int e = i;
                digits();
                if (i == e) {
                    throw new NotJson("bad exponent");
                }
            }
            String t = s.substring(start, i);
            if (!integer) {
                return Double.valueOf(t);
            }
            BigInteger n = new BigInteger(t);
            if (n.bitLength() < 32) {
                return n.intValue();
            }
            if (n.bitLength() < 64) {
                return n.longValue();
            }
            return n;
        }

        void digits() {
            while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
                i++;
            }
        }
    }
}
