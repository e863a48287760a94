"""What scheduling tells the rest of the system."""

from django.dispatch import Signal

# event (an Event), bindings (the enabled bindings it fired). Sent inside the
# event's transaction, so receivers' writes (e.g. an upgrade silence) commit with it.
event_recorded = Signal()
