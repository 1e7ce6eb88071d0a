from django import forms


class MemoForm(forms.Form):
    body = forms.CharField(label="New memo", max_length=2000,
                           widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Add a note for the team"}))

    def clean_body(self):
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("Write something first.")
        return body
