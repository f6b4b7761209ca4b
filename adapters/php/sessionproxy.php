<?php
/**
 * sessionproxy adapter for PHP: $_SESSION over the proxy's X-Session-*
 * headers (CONTRACT.md sections 3 and 13). Load it with require, or for an
 * unchanged app with auto_prepend_file (php.ini or the FPM pool's
 * php_admin_value[auto_prepend_file]). session_start(), $_SESSION,
 * session_regenerate_id(true) and session_destroy() then work on the
 * proxy's session, shared with apps in other languages.
 *
 * Session changes travel as response headers, so output is buffered until
 * the script ends; a response over 64 KiB is flushed as it goes and takes
 * the session as it was at its first flush (later changes are dropped and
 * logged).
 */

namespace SessionProxy;

/** The shared name and value encodings (adapters/README.md). */
final class Codec
{
    /** A framework name as a header name: [a-z0-9] kept, any other byte -XX. */
    public static function encodeName(string $name): string
    {
        $out = '';
        $n = strlen($name);
        for ($i = 0; $i < $n; $i++) {
            $c = $name[$i];
            if (($c >= 'a' && $c <= 'z') || ($c >= '0' && $c <= '9')) {
                $out .= $c;
            } else {
                $out .= sprintf('-%02x', ord($c));
            }
        }
        return $out;
    }

    /** A header name read back: "_" is "-", case ignored, -XX a byte, the rest literal. */
    public static function decodeName(string $header): string
    {
        $h = strtolower(strtr($header, '_', '-'));
        $out = '';
        $n = strlen($h);
        for ($i = 0; $i < $n; $i++) {
            if ($h[$i] === '-' && $i + 2 < $n && preg_match('/^[0-9a-f]{2}$/', substr($h, $i + 1, 2))) {
                $out .= chr(hexdec(substr($h, $i + 1, 2)));
                $i += 2;
            } else {
                $out .= $h[$i];
            }
        }
        return $out;
    }

    /** A value as JSON text, bytes outside 0x20-0x7E and "%" as %XX. */
    public static function encodeValue(mixed $value): string
    {
        $json = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE);
        if ($json === false) {
            $json = 'null'; // an object JSON cannot hold (a resource, a cycle)
        }
        return preg_replace_callback('/[^\x20-\x24\x26-\x7e]/', fn ($m) => sprintf('%%%02X', ord($m[0])), $json);
    }

    /** A header value read back: percent-decoded, then JSON, else a plain string. Never throws. */
    public static function decodeValue(string $header): mixed
    {
        $raw = preg_replace_callback('/%([0-9A-Fa-f]{2})/', fn ($m) => chr(hexdec($m[1])), $header);
        $v = json_decode($raw, true, 512, JSON_INVALID_UTF8_SUBSTITUTE);
        if ($v === null && json_last_error() !== JSON_ERROR_NONE) {
            // Not JSON: a plain string, with invalid UTF-8 replaced.
            return json_decode(json_encode($raw, JSON_INVALID_UTF8_SUBSTITUTE));
        }
        return $v;
    }
}

/**
 * The session handler. PHP calls it at session_start() and at
 * session_write_close(); the headers go out once, from emit(), before the
 * response's first byte.
 */
final class Handler implements \SessionHandlerInterface, \SessionIdInterface
{
    /** @var array<string,mixed> the session as the proxy sent it */
    private array $original = [];
    /** @var array<string,mixed>|null the session as PHP last wrote it */
    private ?array $current = null;
    private bool $started = false;
    private bool $destroyed = false;
    private ?string $rotateTo = null;
    private bool $emitted = false;
    /** write() refused the session as over max_size: nothing is sent */
    private bool $failed = false;
    /** @var array<string,int> stored name to the length of its value, as the proxy sent them */
    private array $raw = [];

    /** session.cookie_lifetime when the request began (php.ini's) */
    private int $lifetime;

    public function __construct()
    {
        $this->lifetime = (int) ini_get('session.cookie_lifetime');
        $prefix = 'HTTP_X_SESSION_ATTR_';
        foreach ($_SERVER as $k => $v) {
            if (is_string($k) && str_starts_with($k, $prefix) && is_string($v)) {
                $this->original[Codec::decodeName(substr($k, strlen($prefix)))] = Codec::decodeValue($v);
                $this->raw[strtolower(strtr(substr($k, strlen($prefix)), '_', '-'))] = strlen($v);
            }
        }
    }

    public function open(string $path, string $name): bool
    {
        return true;
    }

    public function close(): bool
    {
        return true;
    }

    public function read(string $id): string|false
    {
        $this->started = true;
        return serialize($this->current ?? ($this->destroyed ? [] : $this->original));
    }

    public function write(string $id, string $data): bool
    {
        $v = @unserialize($data);
        $now = is_array($v) ? $v : [];
        if (!$this->emitted && ($size = $this->oversize($this->headerList($now))) !== null) {
            // The proxy would refuse it: PHP's "Failed to write session
            // data" warning, as for any save handler that cannot write,
            // and nothing of the session's changes is sent.
            $this->failed = true;
            error_log(sprintf('sessionproxy: the session is %d bytes, over the proxy\'s max_size of %d; it was not saved', $size, self::maxSize()));
            return false;
        }
        $this->current = $now;
        return true;
    }

    public function destroy(string $id): bool
    {
        $this->destroyed = true;
        $this->current = [];
        return true;
    }

    public function gc(int $max): int|false
    {
        return 0;
    }

    /** A new ID in the section 4 shape: 128 bits from the CSPRNG, 22 URL-safe characters. */
    public function create_sid(): string
    {
        $id = rtrim(strtr(base64_encode(random_bytes(16)), '+/', '-_'), '=');
        if ($this->started) {
            // session_regenerate_id(): the destroy before it was no logout.
            $this->rotateTo = $id;
            $this->destroyed = false;
        }
        return $id;
    }

    /**
     * Sends the session's changes as headers, once: at the end of the
     * script, or at the first flush of a large response.
     */
    public function emit(): void
    {
        if ($this->emitted) {
            if (!$this->failed && session_status() === PHP_SESSION_ACTIVE && $this->changes($_SESSION) !== [[], []]) {
                error_log('sessionproxy: session changed after the response was flushed; the change is lost');
            }
            return;
        }
        $this->emitted = true;
        if ($this->failed) {
            return; // write() refused it: the session stays as it was
        }
        if (headers_sent()) {
            error_log('sessionproxy: output was sent before the session headers; session changes are lost');
            return;
        }
        $now = session_status() === PHP_SESSION_ACTIVE ? $_SESSION : $this->current;
        $headers = $this->headerList($now);
        if (($size = $this->oversize($headers)) !== null) {
            // The session is still open at a flush: no write() to fail, so
            // the warning PHP gives a failed write is given here.
            $this->failed = true;
            trigger_error(sprintf('sessionproxy: the session is %d bytes, over the proxy\'s max_size of %d; it was not saved', $size, self::maxSize()), E_USER_WARNING);
            return;
        }
        foreach ($headers as [$name, $value]) {
            header($name . ': ' . $value, false);
        }
        if ($now === null) {
            return;
        }
        // What was emitted is now the proxy's view.
        $this->original = $now;
        $this->current = null;
    }

    /**
     * The X-Session-* headers, as [name, value] pairs, that turn the
     * session the proxy sent into $now (null: the script never wrote it).
     *
     * @return list<array{0: string, 1: string}>
     */
    private function headerList(?array $now): array
    {
        $out = [];
        if ($this->rotateTo !== null) {
            $out[] = ['X-Session-Rotate', $this->rotateTo];
        } elseif ($this->destroyed) {
            $out[] = ['X-Session-Invalidate', '1'];
        }
        if ($now === null) {
            return $out;
        }
        [$set, $unset] = $this->changes($now);
        foreach ($set as $name => $value) {
            $out[] = ['X-Session-Set-' . Codec::encodeName((string) $name), Codec::encodeValue($value)];
        }
        if ($unset !== [] && !$this->destroyed) {
            $out[] = ['X-Session-Unset', implode(', ', array_map(fn ($n) => Codec::encodeName((string) $n), $unset))];
        }
        if (($maxAge = $this->maxAge($out)) !== null) {
            $out[] = $maxAge;
        }
        return $out;
    }

    /**
     * X-Session-Max-Age ("remember me", CONTRACT.md section 16) when the
     * script set a session.cookie_lifetime other than php.ini's
     * (session_start(['cookie_lifetime' => n]) or ini_set('session.cookie_lifetime', n)
     * before session_start; PHP refuses session_set_cookie_params while
     * session.use_cookies is 0)
     * and the session is written: the session's own idle ttl at the proxy
     * and a persistent cookie, which the proxy keeps with the session. It
     * goes with a write only, so that a script that sets the lifetime on
     * every request does not rewrite the session on every request.
     *
     * @param list<array{0: string, 1: string}> $headers the changes
     * @return array{0: string, 1: string}|null
     */
    private function maxAge(array $headers): ?array
    {
        $lifetime = (int) ini_get('session.cookie_lifetime');
        if ($lifetime === $this->lifetime || $headers === []) {
            return null;
        }
        return ['X-Session-Max-Age', (string) min(max($lifetime, 0), 400 * 24 * 3600)];
    }

    /**
     * The proxy's session.max_size in bytes: the constant
     * SESSIONPROXY_MAX_SIZE if the app defines it, else the environment's
     * SESSIONPROXY_MAX_SIZE (an FPM pool's env[...]), else the proxy's
     * default, 64 KiB. 0 leaves the check to the proxy (a 502).
     */
    public static function maxSize(): int
    {
        if (defined('SESSIONPROXY_MAX_SIZE')) {
            return (int) constant('SESSIONPROXY_MAX_SIZE');
        }
        $env = getenv('SESSIONPROXY_MAX_SIZE');
        return is_string($env) && $env !== '' ? (int) $env : 64 << 10;
    }

    /**
     * The size of the session that $headers make of the one the proxy
     * sent, as the proxy stores it, if that is over maxSize(); else null.
     * Each name and value counts with its length prefix (a varint), plus
     * 15 bytes: the least the proxy's encoding spends besides them (format,
     * flags, version, creation and last-use times, count; it also keeps
     * the expiry), so that the adapter never refuses what the proxy would
     * store (sessionstore's AppendEncode).
     *
     * @param list<array{0: string, 1: string}> $headers
     */
    private function oversize(array $headers): ?int
    {
        $max = self::maxSize();
        if ($max <= 0) {
            return null;
        }
        $sizes = $this->raw;
        $sets = 0;
        foreach ($headers as [$name, $value]) {
            if ($name === 'X-Session-Invalidate') {
                $sizes = [];
            } elseif (str_starts_with($name, 'X-Session-Set-')) {
                $sizes[substr($name, strlen('X-Session-Set-'))] = strlen($value);
                $sets++;
            } elseif ($name === 'X-Session-Unset') {
                foreach (explode(', ', $value) as $n) {
                    unset($sizes[$n]);
                }
            }
        }
        if ($sets === 0) {
            return null; // nothing grows
        }
        $varint = fn (int $n): int => $n < 0x80 ? 1 : ($n < 0x4000 ? 2 : ($n < 0x200000 ? 3 : 4));
        $size = 15;
        foreach ($sizes as $name => $len) {
            $l = strlen((string) $name);
            $size += $varint($l) + $l + $varint($len) + $len;
        }
        return $size > $max ? $size : null;
    }

    /** @return array{0: array<string,mixed>, 1: list<string>} attributes set and removed */
    private function changes(array $now): array
    {
        $base = $this->destroyed && $this->rotateTo === null ? [] : $this->original;
        $set = [];
        foreach ($now as $k => $v) {
            if (!array_key_exists($k, $base) || $base[$k] !== $v) {
                $set[$k] = $v;
            }
        }
        $unset = [];
        foreach ($base as $k => $_) {
            if (!array_key_exists($k, $now)) {
                $unset[] = (string) $k;
            }
        }
        return [$set, $unset];
    }
}

(function (): void {
    if (PHP_SAPI === 'cli' || session_status() !== PHP_SESSION_NONE) {
        return;
    }
    ini_set('session.serialize_handler', 'php_serialize');
    ini_set('session.use_cookies', '0');       // the proxy keeps the cookie
    ini_set('session.use_only_cookies', '0');
    ini_set('session.use_trans_sid', '0');
    ini_set('session.use_strict_mode', '0');
    ini_set('session.gc_probability', '0');
    $handler = new Handler();
    session_set_save_handler($handler, false);
    $id = $_SERVER['HTTP_X_SESSION_ID'] ?? '';
    if (is_string($id) && preg_match('/^[A-Za-z0-9_-]{16,128}$/', $id)) {
        session_id($id);
    }
    // Output waits for the session's headers; past 64 KiB it flushes,
    // sending them first.
    ob_start(function (string $out, int $phase) use ($handler): string {
        $handler->emit();
        return $out;
    }, 64 << 10);
    register_shutdown_function(function () use ($handler): void {
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close();
        }
        $handler->emit();
    });
})();
