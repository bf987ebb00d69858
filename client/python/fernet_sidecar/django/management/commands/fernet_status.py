from django.core.management.base import BaseCommand, CommandError

from ...._errors import SidecarError
from ... import conf


class Command(BaseCommand):
    help = "Says whether the fernet-sidecar is reachable, and the ids of its keys (never the keys)."

    def handle(self, *args, **options):
        kwargs, ttl = conf.options()
        where = kwargs.get("target", "in this process")
        self.stdout.write("backend          %s (%s)" % (kwargs["backend"], where))
        try:
            status = conf.fernet().status()
        except SidecarError as exc:
            raise CommandError("fernet-sidecar at %s is not reachable (%s)" % (where, conf.failure(exc)), returncode=2) from None
        self.stdout.write("reachable        yes")
        self.stdout.write("version          %s" % status.version)
        self.stdout.write("primary key      %s" % status.primary_key_id)
        self.stdout.write("decrypt-only     %s" % (", ".join(status.decrypt_only_key_ids) or "none"))
        self.stdout.write("TTL              %s" % ("%d s" % ttl if ttl else "none"))
