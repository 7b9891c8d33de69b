# TLS for the client connections of the local servers (STACK_TLS=true, the default).
# Sourced by scripts/stack.sh after scripts/lib.sh; defines tls_enabled and tls_ensure.
#
# tls_ensure creates, once, under $STACK_DIR/tls/ (mode 700, ignored by git with .stack/):
#   ca.pem / ca.key (0600)           a local CA, valid 10 years, trusted by nobody else
#   server.pem / server.key (0600)   the servers' certificate, SAN IP:127.0.0.1, DNS:localhost
#                                    (+ STACK_BIND_HOST when it is another address), signed by the CA
#   keystore.p12                     server key + chain for the JVM servers (Kafka, Cassandra)
#   truststore.p12                   the CA alone, for JVM clients (Spark's Cassandra and Mongo connectors)
#   keystore.password, truststore.password (0600)  random, never printed, never in git
# A later run reuses every file; delete the folder to get a new CA (then restart the servers).

TLS_DIR="$STACK_DIR/tls"

# tls_enabled: STACK_TLS as a boolean (default true); anything else is a one-line error.
tls_enabled() {
  case "${STACK_TLS:-true}" in
    true|True|TRUE|1) return 0 ;;
    false|False|FALSE|0) return 1 ;;
    *) fail tls "STACK_TLS=${STACK_TLS} must be true or false (or 1/0)" ;;
  esac
}

# The names the certificate is valid for.
_tls_san() {
  local san="IP:127.0.0.1,DNS:localhost"
  case "$STACK_BIND_HOST" in
    127.0.0.1|localhost) ;;
    *[!0-9.]*) san="$san,DNS:$STACK_BIND_HOST" ;;
    *) san="$san,IP:$STACK_BIND_HOST" ;;
  esac
  echo "$san"
}

tls_ensure() {
  local d="$TLS_DIR" f missing=0 san tmp
  san="$(_tls_san)"
  for f in ca.pem ca.key server.pem server.key keystore.p12 truststore.p12 keystore.password truststore.password; do
    [ -s "$d/$f" ] || missing=1
  done
  if [ "$missing" = 0 ] && [ "$(cat "$d/.san" 2>/dev/null)" = "$san" ]; then
    say tls "certificates in $d ($(openssl x509 -in "$d/server.pem" -noout -enddate | sed 's/notAfter=/server certificate valid until /'))"
    return 0
  fi
  command -v openssl >/dev/null || fail tls "openssl is not installed"
  command -v keytool >/dev/null || [ -x "$JAVA_HOME/bin/keytool" ] || fail tls "keytool (JDK) not found"
  mkdir -p "$d"; chmod 700 "$d"
  tmp="$(mktemp -d "$d/.new-XXXXXX")"
  (
    set -e
    umask 077
    cd "$tmp"
    if [ -s "$d/ca.pem" ] && [ -s "$d/ca.key" ]; then
      # Keep the CA (clients may already trust it): only the server files are made again.
      cp "$d/ca.pem" "$d/ca.key" .
    else
      say tls "creating a local CA in $d"
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.pem \
        -subj "/O=random-user-analytics/CN=random-user-analytics local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    fi
    say tls "creating the server certificate ($san)"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr \
      -subj "/O=random-user-analytics/CN=localhost" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
      "$san" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
      -extfile server.ext -out server.pem 2>/dev/null
    openssl rand -hex 24 > keystore.password
    openssl rand -hex 24 > truststore.password
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name server \
      -out keystore.p12 -passout file:keystore.password
    "$JAVA_HOME/bin/keytool" -importcert -noprompt -alias rua-local-ca -file ca.pem -storetype PKCS12 \
      -keystore truststore.p12 -storepass:file truststore.password >/dev/null 2>&1
    rm -f server.csr server.ext ca.srl
    chmod 600 ca.key server.key keystore.password truststore.password keystore.p12
    chmod 644 ca.pem server.pem truststore.p12
    printf '%s\n' "$san" > .san
  ) || { rm -rf "$tmp"; fail tls "certificate generation failed (openssl/keytool, see above)"; }
  for f in ca.pem ca.key server.pem server.key keystore.p12 truststore.p12 keystore.password truststore.password .san; do
    mv -f "$tmp/$f" "$d/$f"
  done
  rm -rf "$tmp"
  say tls "certificates ready in $d (CA: $d/ca.pem)"
}
