from .store import store_facts


def store(request):
    facts = store_facts()
    return {"STORE_NAME": facts.name, "STORE_CURRENCY": facts.currency}
