"""Emulated agency EDMS and the adapter interface they share.

    adapter.py     RegistrationCard, Registration, EdmsAdapter (what a new EDMS kind implements)
    sdip.py        card <-> SDIP Envelope, registration acks <-> Registration
    rekord.py      Rekord-style: SDIP natively, push
    smbusiness.py  SMBusiness-style: <SmbCard> XML, exchange folders, mailbox pull
    directum.py    Directum-style: its own JSON, REST, push
    kinds.py       name -> adapter
    service.py     EdmsService: receive/register/answer, create/sign/send, follow receipts
    store.py       the EDMS's own SQLite store and outgoing queue
    web.py         push endpoint and the local HTTP API
    runner.py      one running EDMS: server plus its transport's loops
    hub_client.py  HTTPS client for the hub's wire protocol (never imports `router`)
    config.py      EdmsConfig, RegistrationRules, FAULTS
"""
