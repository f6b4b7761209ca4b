"""The shared encodings against adapters/testdata/vectors.json, the same
vectors every adapter's codec reads, and reading that never fails."""
import json
import os
import random
import unittest

from sessionproxy_adapters import codec

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "vectors.json")


def load_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


class NameTest(unittest.TestCase):
    def test_vectors(self):
        v = load_vectors()
        for case in v["names"]:
            with self.subTest(name=case["name"]):
                self.assertEqual(codec.encode_name(case["name"]), case["header"])
                self.assertEqual(codec.decode_name(case["header"]), case["name"])
                # As WSGI gives it: - as _, upper case.
                wsgi = case["header"].replace("-", "_").upper()
                self.assertEqual(codec.decode_name(wsgi), case["name"])
        for case in v["names_read"]:
            with self.subTest(header=case["header"]):
                self.assertEqual(codec.decode_name(case["header"]), case["name"])

    def test_header_safe(self):
        for name in ["ä€𝄞", "\x00\r\n", "a" * 200, "Ab.C_d-E f"]:
            enc = codec.encode_name(name)
            self.assertRegex(enc, r"^[a-z0-9-]{1,200}$")
            self.assertEqual(codec.decode_name(enc), name)

    def test_too_long_or_empty(self):
        self.assertEqual(len(codec.encode_name("n" * 200)), 200)
        for name in ["", "n" * 201, "." * 67]:
            with self.subTest(name=name):
                with self.assertRaises(ValueError):
                    codec.encode_name(name)

    def test_random_round_trip(self):
        rnd = random.Random(24)
        for _ in range(2000):
            name = "".join(chr(rnd.choice([rnd.randrange(32, 127), rnd.randrange(0x80, 0x800),
                                           rnd.randrange(0x10000, 0x10FFFF)]))
                           for _ in range(rnd.randrange(1, 12)))
            enc = codec.encode_name(name)
            self.assertEqual(codec.decode_name(enc), name)
            self.assertEqual(codec.decode_name(enc.upper().replace("-", "_")), name)

    def test_read_never_fails(self):
        rnd = random.Random(7)
        for _ in range(2000):
            text = "".join(chr(rnd.randrange(0, 256)) for _ in range(rnd.randrange(0, 20)))
            self.assertIsInstance(codec.decode_name(text), str)


class ValueTest(unittest.TestCase):
    def test_vectors(self):
        v = load_vectors()
        for case in v["values"]:
            with self.subTest(value=case["value"]):
                self.assertEqual(codec.encode_value(case["value"]), case["header"])
                got = codec.decode_value(case["header"])
                self.assertEqual(got, case["value"])
                self.assertIs(type(got), type(case["value"]))
        for case in v["values_read"]:
            with self.subTest(header=case["header"]):
                self.assertEqual(codec.decode_value(case["header"]), case["value"])

    def test_header_safe(self):
        for value in ["José 🙂", "\x00\x7f\r\n%", {"k\u2028": ["\t", 1.0e300]}]:
            enc = codec.encode_value(value)
            self.assertTrue(all(0x20 <= ord(c) <= 0x7E for c in enc), enc)
            self.assertEqual(codec.decode_value(enc), value)
            self.assertEqual(codec.decode_value(enc.encode("ascii")), value)

    def test_what_json_cannot_hold(self):
        with self.assertRaises(TypeError):
            codec.encode_value(object())

    def test_undecodable_is_a_plain_string(self):
        for text in ["[" * 100000, "%FF%FE", "{\"a\":1", "nul", "\udcff", b"\xff\x00"]:
            got = codec.decode_value(text)
            self.assertIsInstance(got, str)

    def test_read_never_fails(self):
        rnd = random.Random(13)
        alphabet = "%0123456789abcdefABCDEF\"[]{}:,\\ntrufalse \xe9\x00"
        for _ in range(5000):
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 16)))
            codec.decode_value(text)


class IDTest(unittest.TestCase):
    def test_shape(self):
        seen = set()
        for _ in range(1000):
            sid = codec.new_id()
            # 128 bits: the last character's four low bits are 0.
            self.assertRegex(sid, r"^[A-Za-z0-9_-]{21}[AQgw]$")
            seen.add(sid)
        self.assertEqual(len(seen), 1000)


if __name__ == "__main__":
    unittest.main()
