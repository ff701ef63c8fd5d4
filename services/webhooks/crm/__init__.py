"""CRM subscriptions (HubSpot, Salesforce): the pure request builders and answer readers
(``hubspot``, ``salesforce``, over ``fields``, ``config`` and ``records``), and the sync that
sends them (``sync``)."""
