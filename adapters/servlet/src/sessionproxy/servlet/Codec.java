package sessionproxy.servlet;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * The shared encodings of sessionproxy's adapters (CONTRACT.md section 13),
 * the same as adapters/python's codec.py; both are tested against
 * adapters/testdata/vectors.json.
 *
 * <p>A name keeps its lowercase letters and digits and writes every other
 * byte of its UTF-8 form as {@code -} plus two lowercase hex digits
 * ({@code pojun.tech} becomes {@code pojun-2etech}). A value is JSON with
 * every byte outside 0x20-0x7E and {@code %} itself percent-encoded. Reading
 * never fails: an invalid escape stays literal, and a value that is then not
 * JSON is a plain string.
 */
public final class Codec {
    /** The proxy's longest attribute name (CONTRACT.md section 3). */
    public static final int MAX_NAME_LEN = 200;

    private static final char[] HEX = "0123456789abcdef".toCharArray();
    private static final char[] UPPER_HEX = "0123456789ABCDEF".toCharArray();
    private static final SecureRandom RANDOM = new SecureRandom();

    private Codec() {}

    /**
     * Returns the header form of the attribute name {@code name}.
     *
     * @throws IllegalArgumentException if it is empty or longer than the
     *     proxy takes once encoded: the proxy would refuse the whole update
     */
    public static String encodeName(String name) {
        StringBuilder b = new StringBuilder();
        for (byte x : name.getBytes(StandardCharsets.UTF_8)) {
            int c = x & 0xff;
            if (c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
                b.append((char) c);
            } else {
                b.append('-').append(HEX[c >> 4]).append(HEX[c & 15]);
            }
        }
        if (b.length() == 0 || b.length() > MAX_NAME_LEN) {
            throw new IllegalArgumentException("session attribute name \"" + name + "\" encodes to "
                    + b.length() + " characters; sessionproxy takes 1 to " + MAX_NAME_LEN);
        }
        return b.toString();
    }

    /**
     * Returns the attribute name that the header name {@code text} encodes:
     * {@code _} is read as {@code -} and case is ignored (CGI and WSGI fold
     * both), {@code -} plus two hex digits is that byte, anything else is
     * literal.
     */
    public static String decodeName(String text) {
        byte[] raw = bytes(text.replace('_', '-').toLowerCase(java.util.Locale.ROOT));
        return new String(unescape(raw, '-'), StandardCharsets.UTF_8);
    }

    /**
     * Returns the header form of {@code value}: JSON, percent-encoded.
     *
     * @throws IllegalArgumentException for a value JSON cannot hold (see
     *     {@link Json})
     */
    public static String encodeValue(Object value) {
        StringBuilder b = new StringBuilder();
        for (byte x : Json.encode(value).getBytes(StandardCharsets.UTF_8)) {
            int c = x & 0xff;
            if (c >= 0x20 && c <= 0x7e && c != '%') {
                b.append((char) c);
            } else {
                b.append('%').append(UPPER_HEX[c >> 4]).append(UPPER_HEX[c & 15]);
            }
        }
        return b.toString();
    }

    /**
     * Returns the value that the header value {@code text} holds; never
     * throws. {@code text} is as the container gives it, each byte one
     * ISO-8859-1 character. A value that is not JSON once percent-decoded
     * is returned as that plain string.
     */
    public static Object decodeValue(String text) {
        String plain = unpercent(text);
        try {
            return Json.decode(plain);
        } catch (Json.NotJson | RuntimeException e) {
            return plain;
        }
    }

    /** The header value {@code text} percent-decoded, as UTF-8 text. */
    static String unpercent(String text) {
        return new String(unescape(bytes(text), '%'), StandardCharsets.UTF_8);
    }

    /**
     * Draws a session ID in the proxy's shape (CONTRACT.md section 4): 128
     * bits from {@link SecureRandom}, 22 unpadded URL-safe base64 characters.
     */
    public static String newId() {
        byte[] raw = new byte[16];
        RANDOM.nextBytes(raw);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
    }

    /**
     * The bytes of a header string: one byte per character as the container
     * reads headers (ISO-8859-1); a container that decoded them as UTF-8
     * gives characters above 0xFF, which are taken as UTF-8 again.
     */
    private static byte[] bytes(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) > 0xff) {
                return s.getBytes(StandardCharsets.UTF_8);
            }
        }
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    /** Replaces each {@code mark} plus two hex digits by the byte they spell. */
    private static byte[] unescape(byte[] raw, char mark) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(raw.length);
        for (int i = 0; i < raw.length; i++) {
            if (raw[i] == mark && i + 2 < raw.length) {
                int hi = Character.digit(raw[i + 1], 16), lo = Character.digit(raw[i + 2], 16);
                if (hi >= 0 && lo >= 0 && raw[i + 1] < 0x80 && raw[i + 2] < 0x80) {
                    out.write(hi * 16 + lo);
                    i += 2;
                    continue;
                }
            }
            out.write(raw[i]);
        }
        return out.toByteArray();
    }
}
