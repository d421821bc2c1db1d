#!/usr/bin/env python3
"""A requirer written as charms use Canonical's tls-certificates library: the unit asks
for a certificate on its address and names; what arrives is written to files."""

import logging
import os

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateAvailableEvent,
    CertificateRequestAttributes,
    TLSCertificatesRequiresV4,
)

logger = logging.getLogger(__name__)


class TlsOpsRequirer(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.certificates = TLSCertificatesRequiresV4(
            self,
            "certificates",
            certificate_requests=[self._request()],
            refresh_events=[self.on.update_status],
        )
        framework.observe(self.certificates.on.certificate_available, self._on_available)
        framework.observe(self.on.collect_unit_status, self._on_collect)

    def _request(self) -> CertificateRequestAttributes:
        name = self.unit.name.replace("/", "-")
        address = str(self.model.get_binding("certificates").network.bind_address)
        return CertificateRequestAttributes(
            common_name=f"{name}.ward.test",
            sans_dns=[name, f"{name}.ward.test"],
            sans_ip=[address],
        )

    def _on_available(self, event: CertificateAvailableEvent):
        charm_dir = os.environ.get("JUJU_CHARM_DIR", ".")
        for name, content in (("cert.pem", event.certificate), ("ca.pem", event.ca)):
            with open(os.path.join(charm_dir, name), "w") as f:
                f.write(str(content) + "\n")
        logger.info("certificate available for %s", event.certificate.common_name)

    def _on_collect(self, event: ops.CollectStatusEvent):
        certs, _key = self.certificates.get_assigned_certificates()
        if certs:
            event.add_status(
                ops.ActiveStatus(f"certificate issued for {certs[0].certificate.common_name}")
            )
        elif self.model.get_relation("certificates"):
            event.add_status(ops.WaitingStatus("waiting for a certificate"))
        else:
            event.add_status(ops.BlockedStatus("needs a certificates relation"))


if __name__ == "__main__":
    ops.main(TlsOpsRequirer)
