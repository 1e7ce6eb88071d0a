from django import forms


class MemoForm(forms.Form):
    body = forms.CharField(label="New memo", max_length=2000,
                           error_messages={"required": "Write something first."},
                           widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Add a note for the team"}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "memo_%s")  # unique beside the page behind the pop-up
        super().__init__(*args, **kwargs)

    def clean_body(self):
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("Write something first.")
        return body
