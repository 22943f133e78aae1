#!/bin/sh
# Writes `.env` beside docker-compose.yml: a random credential for each backend (PostgreSQL,
# RabbitMQ, the S3 store) and media-service's URL-signing key, which compose reads at every `docker compose` command. Run once:
#
#   sh deploy/generate-env.sh
#
# An existing `.env` is kept (its credentials are the ones in the volumes): remove it first to
# start over, with `docker compose down -v`, since the backends keep the credentials they were
# created with.
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo ".env exists: kept (remove it, and the volumes, to start over)" >&2
  exit 1
fi
secret() {
  # 24 random bytes as hex: safe in URLs (DATABASE_URL, AMQP_URL) and in JSON.
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}
umask 077
{
  echo "# Credentials of this deployment (deploy/generate-env.sh). Never commit this file."
  echo "POSTGRES_PASSWORD=$(secret)"
  echo "RABBITMQ_PASSWORD=$(secret)"
  echo "S3_ACCESS_KEY=platform-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  echo "S3_SECRET_KEY=$(secret)"
  echo "MEDIA_SIGNING_KEY=$(secret)$(secret)"
} > .env
echo "wrote .env (mode 0600)" >&2
