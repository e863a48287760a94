from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with reads requiring the `view` permission."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class ChangePermissions(ModelPermissions):
    """For POST actions on an existing object (acknowledge, expire, send test): they
    change it, so they need its `change` permission rather than `add`."""

    perms_map = {
        **ModelPermissions.perms_map,
        "POST": ["%(app_label)s.change_%(model_name)s"],
    }
