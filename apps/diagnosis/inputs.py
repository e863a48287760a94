"""One definition of the label input, shared by the API, the dashboard form and the admin."""

from __future__ import annotations

from django import forms

from apps.runs.models import RootCause

NOTE_MAX = 2000


class LabelForm(forms.Form):
    """An operator's verdict on a root cause."""

    category = forms.ChoiceField(choices=RootCause.choices)
    note = forms.CharField(max_length=NOTE_MAX, required=False)
