package proxy

import (
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/proxy/logformat"
)

// appendTemplate writes a line from a parsed template: each variable's
// value as nginx writes it (escaped as nginx's default escape=, "-" for
// an empty one), the literals as they are.
func appendTemplate(b []byte, parts []logformat.Part, ctx *fasthttp.RequestCtx, info *AccessInfo) []byte {
	for i := range parts {
		p := &parts[i]
		switch p.Var {
		case logformat.None:
			b = append(b, p.Text...)
		case logformat.RemoteAddr:
			b = appendIP(b, ctx.RemoteAddr())
		case logformat.TimeLocal:
			b = info.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
		case logformat.Request:
			b = appendEscaped(b, ctx.Method())
			b = append(b, ' ')
			b = appendEscaped(b, ctx.RequestURI())
			b = append(b, ' ')
			b = appendEscaped(b, ctx.Request.Header.Protocol())
		case logformat.Status:
			b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
		case logformat.BodyBytesSent:
			if info.Bytes < 0 {
				b = append(b, '-')
			} else {
				b = strconv.AppendInt(b, info.Bytes, 10)
			}
		case logformat.HTTPReferer:
			b = appendOrDash(b, ctx.Request.Header.Referer())
		case logformat.HTTPUserAgent:
			b = appendOrDash(b, ctx.Request.Header.UserAgent())
		case logformat.RequestTime:
			b = appendSeconds(b, info.Duration)
		case logformat.UpstreamAddr:
			if info.Backend == nil {
				b = append(b, '-')
			} else {
				b = appendEscapedString(b, upstreamAddr(info.Backend.URL))
			}
		case logformat.UpstreamResponseTime:
			if info.Backend == nil {
				b = append(b, '-')
			} else {
				b = appendSeconds(b, info.Upstream)
			}
		case logformat.RequestID:
			b = appendOrDash(b, ctx.Request.Header.Peek("X-Request-Id"))
		case logformat.Session:
			if info.SessionID[0] == 0 {
				b = append(b, '-')
			} else {
				b = appendEscaped(b, info.SessionID[:])
			}
		}
	}
	return append(b, '\n')
}

// appendSeconds writes d as nginx writes times: seconds with three
// decimals.
func appendSeconds(b []byte, d time.Duration) []byte {
	ms := d.Milliseconds()
	b = strconv.AppendInt(b, ms/1000, 10)
	ms %= 1000
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// upstreamAddr is a backend URL without its scheme and path: host:port
// for http(s)://, the socket's path for unix.
func upstreamAddr(url string) string {
	i := strings.Index(url, "://")
	if i < 0 {
		return url
	}
	url = url[i+3:]
	if i := strings.IndexByte(url, '/'); i > 0 {
		url = url[:i]
	}
	return url
}

func appendEscapedString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			const hex = "0123456789ABCDEF"
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
