package sessionproxy.servlet;

import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;

/**
 * The response, holding the app's output until the session's headers are
 * written (CONTRACT.md section 13, "Timing"): the session travels in
 * response headers, which must go before the body. Output is held until the
 * request is done, so a page that changes the session after writing some
 * output works; past {@code limit} bytes (or characters), on the app's first
 * flush, or on sendRedirect/sendError, the session headers are written and
 * the output goes on unheld. Session changes after that are lost (and
 * logged once).
 */
final class HoldingResponse extends HttpServletResponseWrapper {
    private final SessionState state;
    private final int limit;
    private HeldStream stream;
    private HeldWriter heldWriter;
    private PrintWriter writer;

    HoldingResponse(HttpServletResponse resp, SessionState state, int limit) {
        super(resp);
        this.state = state;
        this.limit = limit;
    }

    private HttpServletResponse real() {
        return (HttpServletResponse) getResponse();
    }

    /**
     * Writes the session headers, then what is held; called when the app is
     * done with the response (or has handed it to async processing).
     */
    void release() throws IOException {
        state.send(real());
        pass();
    }

    /** Writes the session headers and passes held output on. */
    private void pass() throws IOException {
        if (stream != null) {
            stream.pass();
        } else if (heldWriter != null) {
            heldWriter.pass();
        } else {
            state.send(real());
        }
    }

    private void discardHeld() {
        if (stream != null) {
            stream.discard();
        }
        if (heldWriter != null) {
            heldWriter.discard();
        }
    }

    @Override
    public ServletOutputStream getOutputStream() throws IOException {
        if (writer != null) {
            throw new IllegalStateException("getWriter() has already been called for this response");
        }
        if (stream == null) {
            stream = new HeldStream();
        }
        return stream;
    }

    /**
     * A writer that holds characters; the container's own writer, with the
     * character encoding set by then, is taken when they are passed on.
     */
    @Override
    public PrintWriter getWriter() throws IOException {
        if (stream != null) {
            throw new IllegalStateException("getOutputStream() has already been called for this response");
        }
        if (writer == null) {
            heldWriter = new HeldWriter();
            writer = new PrintWriter(heldWriter);
        }
        return writer;
    }

    @Override
    public void flushBuffer() throws IOException {
        pass();
        if (writer != null) {
            writer.flush();
        }
        super.flushBuffer();
    }

    @Override
    public void resetBuffer() {
        super.resetBuffer();
        discardHeld();
    }

    @Override
    public void reset() {
        super.reset(); // throws once committed; the container clears its headers, ours too
        discardHeld();
        stream = null;
        heldWriter = null;
        writer = null;
        state.unsend();
    }

    @Override
    public void sendError(int sc, String msg) throws IOException {
        discardHeld();
        state.send(real());
        super.sendError(sc, msg);
    }

    @Override
    public void sendError(int sc) throws IOException {
        discardHeld();
        state.send(real());
        super.sendError(sc);
    }

    @Override
    public void sendRedirect(String location) throws IOException {
        discardHeld();
        state.send(real());
        super.sendRedirect(location);
    }

    // The session is never in the URL: the proxy's cookie carries it.

    @Override
    public String encodeURL(String url) {
        return url;
    }

    @Override
    public String encodeRedirectURL(String url) {
        return url;
    }

    /** For Servlet 5.0 containers (removed in 6.0). */
    @SuppressWarnings("deprecation")
    public String encodeUrl(String url) {
        return url;
    }

    /** For Servlet 5.0 containers (removed in 6.0). */
    @SuppressWarnings("deprecation")
    public String encodeRedirectUrl(String url) {
        return url;
    }

    /** Bytes held until passed on to the container's output stream. */
    private final class HeldStream extends ServletOutputStream {
        private ByteArrayOutputStream held = new ByteArrayOutputStream();
        private ServletOutputStream out;

        void pass() throws IOException {
            if (out != null) {
                return;
            }
            state.send(real());
            out = real().getOutputStream();
            held.writeTo(out);
            held = null;
        }

        void discard() {
            if (held != null) {
                held.reset();
            }
        }

        @Override
        public void write(int b) throws IOException {
            if (out != null) {
                out.write(b);
                return;
            }
            held.write(b);
            if (held.size() > limit) {
                pass();
            }
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (out != null) {
                out.write(b, off, len);
                return;
            }
            held.write(b, off, len);
            if (held.size() > limit) {
                pass();
            }
        }

        @Override
        public void flush() throws IOException {
            pass();
            out.flush();
        }

        @Override
        public void close() throws IOException {
            pass();
            out.close();
        }

        @Override
        public boolean isReady() {
            return out == null || out.isReady();
        }

        @Override
        public void setWriteListener(WriteListener l) {
            try {
                pass();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            out.setWriteListener(l);
        }
    }

    /** Characters held until passed on to the container's writer. */
    private final class HeldWriter extends Writer {
        private StringBuilder held = new StringBuilder();
        private Writer out;

        void pass() throws IOException {
            if (out != null) {
                return;
            }
            state.send(real());
            out = real().getWriter();
            out.append(held);
            held = null;
        }

        void discard() {
            if (held != null) {
                held.setLength(0);
            }
        }

        @Override
        public void write(char[] cbuf, int off, int len) throws IOException {
            if (out != null) {
                out.write(cbuf, off, len);
                return;
            }
            held.append(cbuf, off, len);
            if (held.length() > limit) {
                pass();
            }
        }

        @Override
        public void write(String s, int off, int len) throws IOException {
            if (out != null) {
                out.write(s, off, len);
                return;
            }
            held.append(s, off, off + len);
            if (held.length() > limit) {
                pass();
            }
        }

        @Override
        public void flush() throws IOException {
            pass();
            out.flush();
        }

        @Override
        public void close() throws IOException {
            pass();
            out.close();
        }
    }
}
