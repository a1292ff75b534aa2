import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * A legacy Java app: HttpsURLConnection with the proxy, TLS versions, cipher
 * suites and truststore all taken from system properties, the way old apps
 * are configured from the command line:
 *
 * <pre>
 * java -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 \
 *      -Djdk.tls.client.protocols=TLSv1 \
 *      -Djava.security.properties=java.security \
 *      -Djavax.net.ssl.trustStore=truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit \
 *      LegacyClient https://nginx.takap.dev/index.json
 * </pre>
 *
 * Prints "protocol=TLSv1 cipher=... status=200 body=..." or the error.
 */
public class LegacyClient {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: LegacyClient URL");
            System.exit(2);
        }
        HttpsURLConnection conn = (HttpsURLConnection) new URL(args[0]).openConnection();
        conn.setConnectTimeout(10_000);
        conn.setReadTimeout(10_000);
        // Remember the TLS socket so the negotiated version can be printed.
        Recording factory = new Recording((SSLSocketFactory) SSLSocketFactory.getDefault());
        conn.setSSLSocketFactory(factory);
        try {
            int status = conn.getResponseCode();
            String body;
            try (InputStream in = status < 400 ? conn.getInputStream() : conn.getErrorStream()) {
                body = in == null ? "" : new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
            }
            String protocol = "?", cipher = "?";
            if (factory.last != null) {
                protocol = factory.last.getSession().getProtocol();
                cipher = factory.last.getSession().getCipherSuite();
            }
            System.out.println("protocol=" + protocol + " cipher=" + cipher
                    + " status=" + status + " body=" + body);
            System.exit(status == 200 ? 0 : 1);
        } catch (IOException e) {
            System.out.println("error: " + e);
            System.exit(1);
        }
    }

    /** Delegates to the default factory and keeps the last socket it made. */
    static final class Recording extends SSLSocketFactory {
        private final SSLSocketFactory base;
        volatile SSLSocket last;

        Recording(SSLSocketFactory base) {
            this.base = base;
        }

        private Socket keep(Socket s) {
            last = (SSLSocket) s;
            return s;
        }

        @Override public String[] getDefaultCipherSuites() { return base.getDefaultCipherSuites(); }
        @Override public String[] getSupportedCipherSuites() { return base.getSupportedCipherSuites(); }
        @Override public Socket createSocket(Socket s, String host, int port, boolean autoClose) throws IOException {
            return keep(base.createSocket(s, host, port, autoClose));
        }
        @Override public Socket createSocket(String host, int port) throws IOException {
            return keep(base.createSocket(host, port));
        }
        @Override public Socket createSocket(String host, int port, InetAddress local, int localPort) throws IOException {
            return keep(base.createSocket(host, port, local, localPort));
        }
        @Override public Socket createSocket(InetAddress host, int port) throws IOException {
            return keep(base.createSocket(host, port));
        }
        @Override public Socket createSocket(InetAddress host, int port, InetAddress local, int localPort) throws IOException {
            return keep(base.createSocket(host, port, local, localPort));
        }
    }
}
