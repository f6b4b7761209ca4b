package sessionproxy.servlet;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * The Java side of FuzzServletCodec (servlet_test.go): reads one request a
 * line, "OP HEX" with the input's bytes in hex, and answers one line.
 *
 * <ul>
 * <li>V: decodeValue of the input as a header (one byte a character) must
 *     not throw; answers "J" if its percent-decoded text is JSON to this
 *     adapter's reader, "P" if not (the Go side asks encoding/json).
 * <li>R: the input as UTF-8 text; encodeValue then decodeValue must give it back.
 * <li>N: the same for names (encodeName then decodeName), when it fits.
 * <li>D: decodeName of the input as a header name must not throw.
 * </ul>
 * R, N and D answer "ok" or "bad: why"; anything that throws, "E" and what.
 */
public final class CodecFuzz {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintStream out = new PrintStream(System.out, true, "US-ASCII");
        for (String line; (line = in.readLine()) != null;) {
            String op = line.substring(0, 1);
            byte[] raw = hex(line.substring(2));
            String header = new String(raw, StandardCharsets.ISO_8859_1);
            String text = new String(raw, StandardCharsets.UTF_8);
            String answer;
            try {
                switch (op) {
                case "V": {
                    Codec.decodeValue(header); // must not throw
                    String plain = Codec.unpercent(header);
                    try {
                        Json.decode(plain);
                        answer = "J";
                    } catch (Json.NotJson e) {
                        answer = "P";
                    }
                    break;
                }
                case "R": {
                    Object back = Codec.decodeValue(Codec.encodeValue(text));
                    answer = text.equals(back) ? "ok" : "bad: " + Codec.encodeValue(text) + " reads as " + back;
                    break;
                }
                case "N": {
                    String enc;
                    try {
                        enc = Codec.encodeName(text);
                    } catch (IllegalArgumentException e) {
                        answer = text.isEmpty() || text.getBytes(StandardCharsets.UTF_8).length > 66 ? "ok" : "bad: refused " + e.getMessage();
                        break;
                    }
                    String back = Codec.decodeName(enc);
                    answer = text.equals(back) ? "ok" : "bad: " + enc + " reads as " + back;
                    break;
                }
                default:
                    Codec.decodeName(header);
                    answer = "ok";
                }
            } catch (Throwable e) {
                answer = "E " + e.toString().replace('\n', ' ');
            }
            out.println(answer);
        }
    }

    private static byte[] hex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }
}
