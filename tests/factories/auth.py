import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from factory.django import DjangoModelFactory


class StaffUserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n:04d}")
    email = factory.Faker("email")
    is_staff = True
    password = factory.django.Password("pass-word-123")

    @factory.post_generation
    def role(user, create, extracted, **kwargs):  # StaffUserFactory(role="Ops")
        if create and extracted:
            user.groups.add(Group.objects.get(name=extracted))
