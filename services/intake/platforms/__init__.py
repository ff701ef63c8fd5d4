"""Ad platforms' lead webhooks: Google Ads and Meta (``api``), their fields mapped onto a
submission (``mapping``, pure), their records (``store``) and the Meta leads fetched from the
Graph API (``fetch``)."""
