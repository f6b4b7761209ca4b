package sessionproxy.servlet;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Checks the adapter's codec against the vectors every adapter shares
 * (adapters/testdata/vectors.json), and the edges of its JSON. Run by
 * servlet_test.go: java -cp sessionproxy-servlet.jar:DIR
 * sessionproxy.servlet.CodecVectors vectors.json. In the same package as the
 * codec to reach its JSON reader, which also reads the vectors file.
 */
public final class CodecVectors {
    private static int passed, failed;

    private static void check(boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
            System.out.println("FAIL " + what);
        }
    }

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        String text = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
        Map<String, Object> v = (Map<String, Object>) Json.decode(text);
        for (Object o : (List<Object>) v.get("names")) {
            Map<String, Object> c = (Map<String, Object>) o;
            String got = Codec.encodeName((String) c.get("name"));
            check(got.equals(c.get("header")), "encodeName(" + c.get("name") + ") = " + got + ", want " + c.get("header"));
            String back = Codec.decodeName(got);
            check(back.equals(c.get("name")), "decodeName(" + got + ") = " + back);
        }
        for (Object o : (List<Object>) v.get("names_read")) {
            Map<String, Object> c = (Map<String, Object>) o;
            String got = Codec.decodeName((String) c.get("header"));
            check(got.equals(c.get("name")), "decodeName(" + c.get("header") + ") = " + got + ", want " + c.get("name"));
        }
        for (Object o : (List<Object>) v.get("values")) {
            Map<String, Object> c = (Map<String, Object>) o;
            String got = Codec.encodeValue(c.get("value"));
            check(got.equals(c.get("header")), "encodeValue(" + c.get("value") + ") = " + got + ", want " + c.get("header"));
            Object back = Codec.decodeValue(got);
            check(java.util.Objects.equals(back, c.get("value")), "decodeValue(" + got + ") = " + back);
        }
        for (Object o : (List<Object>) v.get("values_read")) {
            Map<String, Object> c = (Map<String, Object>) o;
            Object got = Codec.decodeValue((String) c.get("header"));
            check(java.util.Objects.equals(got, c.get("value")),
                    "decodeValue(" + c.get("header") + ") = " + got + ", want " + c.get("value"));
        }

        // Java's own types: an Integer counter comes back an Integer, a long a Long.
        check(Codec.decodeValue("3") instanceof Integer, "3 reads as Integer");
        check(Long.valueOf(1L << 40).equals(Codec.decodeValue(Codec.encodeValue(1L << 40))), "2^40 reads as Long");
        check(Double.valueOf(-1.5).equals(Codec.decodeValue("-1.5")), "-1.5 reads as Double");
        check(new java.math.BigInteger("123456789012345678901234567890").equals(Codec.decodeValue("123456789012345678901234567890")),
                "a larger integer reads as BigInteger");
        check(Codec.encodeValue(new int[] {1, 2}).equals("[1,2]"), "an int[] is a JSON array");
        check(Codec.encodeValue('x').equals("\"x\""), "a char is a string");
        check(Codec.encodeValue("\u0001").equals("\"\\u0001\""), "control characters are escaped in JSON");
        check(Codec.decodeValue("\"\\ud83d\\ude42\"").equals("\ud83d\ude42"), "a surrogate pair in \\u escapes");
        for (Object bad : new Object[] {new Object(), Double.NaN, Double.POSITIVE_INFINITY, Map.of(1, 2), List.of(new Object())}) {
            try {
                Codec.encodeValue(bad);
                check(false, "encodeValue(" + bad + ") refused");
            } catch (IllegalArgumentException e) {
                check(e.getMessage() != null, "encodeValue refuses " + bad);
            }
        }
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < 100000; i++) {
            deep.append('[');
        }
        check(Codec.decodeValue(deep.toString()).equals(deep.toString()), "deep nesting reads as a plain string, no StackOverflowError");
        for (String notJson : new String[] {"01", "1.", "-", "tru", "\"a", "[1,]", "{\"a\"1}", "{1:2}", "1 2", "\"\\x\"", "NaN"}) {
            check(Codec.decodeValue(notJson).equals(notJson), "not JSON, a plain string: " + notJson);
        }
        String longName = "a".repeat(Codec.MAX_NAME_LEN);
        check(Codec.encodeName(longName).equals(longName), "a name of 200 characters");
        for (String badName : new String[] {"", ".".repeat(67)}) {
            try {
                Codec.encodeName(badName);
                check(false, "encodeName(" + badName + ") refused");
            } catch (IllegalArgumentException e) {
                check(true, "");
            }
        }
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            String id = Codec.newId();
            ids.add(id);
            String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            boolean shape = id.length() == 22 && id.chars().allMatch(ch -> alphabet.indexOf(ch) >= 0)
                    && (alphabet.indexOf(id.charAt(21)) & 0x0f) == 0;
            check(shape, "newId() in the section 4 shape: " + id);
        }
        check(ids.stream().distinct().count() == ids.size(), "newId() draws distinct IDs");
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
