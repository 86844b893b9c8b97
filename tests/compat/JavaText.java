// Java's side of tests/compat/test_java_text.sh, run as a single-file source
// program (java JavaText.java). Reads lines of hex-encoded bytes; for each
// writes the bytes decoded as UTF-8 (new String(bytes, UTF_8), which replaces
// ill-formed input), lowercased with toLowerCase(Locale.ROOT) as the Zipkin
// server lowercases names, and encoded again; then the decoded text encoded
// again; then 1 when every code point of it is defined in this JDK's Unicode
// version (else 0). All in hex, separated by spaces, one line per input line.
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

public class JavaText {
    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b)
            sb.append(Character.forDigit((x >> 4) & 15, 16)).append(Character.forDigit(x & 15, 16));
        return sb.toString();
    }

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.US_ASCII)));
        String line;
        while ((line = in.readLine()) != null) {
            byte[] b = new byte[line.length() / 2];
            for (int i = 0; i < b.length; i++)
                b[i] = (byte) Integer.parseInt(line.substring(2 * i, 2 * i + 2), 16);
            String s = new String(b, StandardCharsets.UTF_8);
            boolean defined = s.codePoints().allMatch(Character::isDefined);
            out.println(hex(s.toLowerCase(Locale.ROOT).getBytes(StandardCharsets.UTF_8)) + " "
                        + hex(s.getBytes(StandardCharsets.UTF_8)) + " " + (defined ? 1 : 0));
        }
        out.flush();
    }
}
