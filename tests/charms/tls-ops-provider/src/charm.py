#!/usr/bin/env python3
"""A CA written as charms use Canonical's tls-certificates library: the leader signs
every outstanding CSR with the library's helpers, its CA kept in an app secret."""

import logging
from datetime import timedelta

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
    ProviderCertificate,
    TLSCertificatesProvidesV4,
)

logger = logging.getLogger(__name__)

CA_LABEL = "ops-provider-ca"


class TlsOpsProvider(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.certificates = TLSCertificatesProvidesV4(self, "certificates")
        framework.observe(self.on["certificates"].relation_changed, self._issue)
        framework.observe(self.on.update_status, self._issue)
        framework.observe(self.on.collect_unit_status, self._on_collect)

    def _ca(self) -> tuple[Certificate, PrivateKey]:
        try:
            content = self.model.get_secret(label=CA_LABEL).get_content(refresh=True)
            return (
                Certificate.from_string(content["ca-certificate"]),
                PrivateKey.from_string(content["private-key"]),
            )
        except ops.SecretNotFoundError:
            pass
        key = PrivateKey.generate()
        ca = Certificate.generate_self_signed_ca(
            CertificateRequestAttributes(common_name="Canonical library CA", is_ca=True),
            key,
            timedelta(days=365),
        )
        self.app.add_secret(
            {"ca-certificate": str(ca), "private-key": str(key)}, label=CA_LABEL
        )
        return ca, key

    def _issue(self, _event):
        if not self.unit.is_leader():
            return
        outstanding = self.certificates.get_outstanding_certificate_requests()
        if not outstanding:
            return
        ca, key = self._ca()
        for request in outstanding:
            certificate = Certificate.generate(
                csr=request.certificate_signing_request,
                ca=ca,
                ca_private_key=key,
                validity=timedelta(days=30),
                is_ca=request.is_ca,
            )
            self.certificates.set_relation_certificate(
                ProviderCertificate(
                    relation_id=request.relation_id,
                    certificate=certificate,
                    certificate_signing_request=request.certificate_signing_request,
                    ca=ca,
                    chain=[certificate, ca],
                )
            )
            logger.info("issued a certificate for %s", certificate.common_name)

    def _on_collect(self, event: ops.CollectStatusEvent):
        if not self.unit.is_leader():
            event.add_status(ops.BlockedStatus("only the leader signs"))
            return
        issued = self.certificates.get_issued_certificates()
        event.add_status(ops.ActiveStatus(f"issued {len(issued)} certificate(s)"))


if __name__ == "__main__":
    ops.main(TlsOpsProvider)
