#!/usr/bin/env python3
"""A small ops charm: shares a token as a secret over `feed`, reads one over `source`."""

import logging

import ops

logger = logging.getLogger(__name__)


class DemoCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(token="", hooks=0)
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on.feed_relation_joined, self._on_feed_joined)
        framework.observe(self.on.source_relation_changed, self._on_source_changed)
        framework.observe(self.on.secret_changed, self._on_secret_changed)
        framework.observe(self.on.get_token_action, self._on_get_token)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)

    def _on_install(self, event: ops.InstallEvent):
        logger.info("installing %s", self.unit.name)
        self.unit.set_workload_version("1.0")

    def _on_config_changed(self, event: ops.ConfigChangedEvent):
        self._stored.hooks += 1
        if not self.unit.is_leader():
            return
        for relation in self.model.relations["feed"]:
            relation.data[self.app]["greeting"] = self.config["greeting"]
        try:
            secret = self.model.get_secret(label="feed-token")
        except ops.SecretNotFoundError:
            return
        secret.set_content({"token": self.config["token"]})

    def _on_feed_joined(self, event: ops.RelationJoinedEvent):
        event.relation.data[self.unit]["note"] = f"hello from {self.unit.name}"
        if not self.unit.is_leader():
            return
        try:
            secret = self.model.get_secret(label="feed-token")
        except ops.SecretNotFoundError:
            secret = self.app.add_secret({"token": self.config["token"]}, label="feed-token")
        secret.grant(event.relation)
        event.relation.data[self.app]["token-id"] = secret.id
        event.relation.data[self.app]["greeting"] = self.config["greeting"]

    def _on_source_changed(self, event: ops.RelationChangedEvent):
        data = event.relation.data[event.app]
        secret_id = data.get("token-id")
        if not secret_id:
            return
        secret = self.model.get_secret(id=secret_id, label="source-token")
        self._stored.token = secret.get_content()["token"]
        event.relation.data[self.unit]["ack"] = self._stored.token

    def _on_secret_changed(self, event: ops.SecretChangedEvent):
        self._stored.token = event.secret.get_content(refresh=True)["token"]
        for relation in self.model.relations["source"]:
            relation.data[self.unit]["ack"] = self._stored.token

    def _on_get_token(self, event: ops.ActionEvent):
        event.set_results({"token": self._stored.token, "hooks": str(self._stored.hooks)})

    def _on_collect_status(self, event: ops.CollectStatusEvent):
        if self.model.relations["source"] and not self._stored.token:
            event.add_status(ops.WaitingStatus("waiting for a token"))
        greeting = ""
        for relation in self.model.relations["source"]:
            if relation.app is not None:
                greeting = relation.data[relation.app].get("greeting", "")
        if self._stored.token:
            event.add_status(ops.ActiveStatus(f"token {self._stored.token} greeting {greeting}"))
        event.add_status(ops.ActiveStatus("ready"))


if __name__ == "__main__":
    ops.main(DemoCharm)
