"""Who is asking: the run page's TokenReview and SubjectAccessReview."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def review_token(api_client: Any, token: str, audiences: list[str]) -> dict[str, Any]:
    """The TokenReview status (`authenticated`, `user`, `audiences`) of `token` for `audiences`."""
    spec: dict[str, Any] = {"token": token, "audiences": audiences}
    review = client.AuthenticationV1Api(api_client).create_token_review({"spec": spec})
    status: dict[str, Any] = api_client.sanitize_for_serialization(review.status) or {}
    return status


def review_access(api_client: Any, spec: dict[str, Any]) -> bool:
    """Whether the SubjectAccessReview `spec` (user, groups, resource attributes) is allowed."""
    review = client.AuthorizationV1Api(api_client).create_subject_access_review({"spec": spec})
    return bool(review.status is not None and review.status.allowed)
