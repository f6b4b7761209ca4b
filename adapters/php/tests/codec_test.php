<?php
// The shared encodings against adapters/testdata/vectors.json, and reading
// that never fails. Run by adapters_test.go with php-cli; exits 1 on a
// mismatch.
require __DIR__ . '/../sessionproxy.php';

use SessionProxy\Codec;

$v = json_decode(file_get_contents(__DIR__ . '/../../testdata/vectors.json'), true);
$fails = 0;
$check = function (string $what, $got, $want) use (&$fails) {
    if ($got !== $want) {
        fwrite(STDERR, "$what: got " . var_export($got, true) . ', want ' . var_export($want, true) . "\n");
        $fails++;
    }
};
// Vector header strings hold one byte per character U+0000..U+00FF.
$bytes = fn (string $s) => mb_convert_encoding_free($s);
function mb_convert_encoding_free(string $s): string
{
    $out = '';
    foreach (preg_split('//u', $s, -1, PREG_SPLIT_NO_EMPTY) as $ch) {
        $cp = unpack('N', iconv_free($ch))[1];
        $out .= $cp < 256 ? chr($cp) : $ch;
    }
    return $out;
}
function iconv_free(string $ch): string
{
    // UTF-8 to a 4-byte code point, without mbstring or iconv.
    $o = array_values(unpack('C*', $ch));
    $cp = match (count($o)) {
        1 => $o[0],
        2 => (($o[0] & 0x1f) << 6) | ($o[1] & 0x3f),
        3 => (($o[0] & 0x0f) << 12) | (($o[1] & 0x3f) << 6) | ($o[2] & 0x3f),
        default => (($o[0] & 0x07) << 18) | (($o[1] & 0x3f) << 12) | (($o[2] & 0x3f) << 6) | ($o[3] & 0x3f),
    };
    return pack('N', $cp);
}
foreach ($v['names'] as $c) {
    $check("encodeName({$c['name']})", Codec::encodeName($c['name']), $c['header']);
    $check("decodeName({$c['header']})", Codec::decodeName($c['header']), $c['name']);
}
foreach ($v['names_read'] as $c) {
    $check("decodeName({$c['header']})", Codec::decodeName($c['header']), $c['name']);
}
foreach ($v['values'] as $c) {
    $check('encodeValue(' . json_encode($c['value']) . ')', Codec::encodeValue($c['value']), $bytes($c['header']));
    $check('decodeValue(' . $c['header'] . ')', Codec::decodeValue($bytes($c['header'])), $c['value']);
}
foreach ($v['values_read'] as $c) {
    $check('decodeValue(' . json_encode($c['header']) . ')', Codec::decodeValue($bytes($c['header'])), $c['value']);
}
// Reading never throws, whatever the bytes.
for ($i = 0; $i < 2000; $i++) {
    Codec::decodeValue(random_bytes(random_int(1, 40)));
    Codec::decodeName(random_bytes(random_int(1, 40)));
}
echo $fails === 0 ? "ok\n" : "$fails failures\n";
exit($fails === 0 ? 0 : 1);
