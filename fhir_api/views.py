"""FHIR REST endpoints under ``/fhir`` (hl7.org/fhir/R4B/http.html).

Each view only reads the request (path, query, headers, body), calls one function of
``interactions`` (or ``bundles``/``capability``) and renders its ``Answer``. Errors are raised
as ``FHIRError``s and rendered by ``exception_handler`` as OperationOutcomes.
"""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import bundles, interactions, operations, query_string
from .capability import capability_statement
from .exceptions import BadRequest, NotFound
from .operations import everything, lastn
from .parsers import FHIRJSONParser, JSONParser
from .search.types import reference as search_reference

# Parameters that change how a response is written, never what an interaction selects.
FORMAT_PARAMS = {"_format", "_pretty"}


def base_url(request) -> str:
    """The base this request was addressed to: ``FHIR_BASE_URL``, or its scheme and Host.
    The production server's ``APIMiddleware`` has worked it out with its check of the Host."""
    return (
        getattr(request, "fhir_base", None)
        or settings.FHIR_BASE_URL
        or request.build_absolute_uri("/fhir")
    )


_policies: dict[tuple[type, str], tuple] = {}


def _policy_objects(view_class: type, attribute: str) -> list:
    """One object of each class ``view_class.<attribute>`` lists, made on first use."""
    key = (view_class, attribute)
    objects = _policies.get(key)
    if objects is None:
        objects = _policies[key] = tuple(policy() for policy in getattr(view_class, attribute))
    return list(objects)


def query_items(request) -> list[tuple[str, str]]:
    """The query's parameters in the order sent, without the format parameters."""
    return [(key, value) for key, value in query_string.items(request) if key not in FORMAT_PARAMS]


def condition(request) -> str:
    """The search part of a conditional interaction's URL, without format parameters."""
    from urllib.parse import urlencode

    return urlencode(query_items(request))


class FHIRView(APIView):
    # OPTIONS answers what the endpoint allows, never DRF's description of the view.
    metadata_class = None

    # DRF makes new renderer, parser, authenticator and permission objects for every request.
    # Ours keep no state of their own (a request's state is on the request), so each view
    # class makes them once; each request gets its own list of them.
    def get_renderers(self):
        return _policy_objects(type(self), "renderer_classes")

    def get_parsers(self):
        return _policy_objects(type(self), "parser_classes")

    def get_authenticators(self):
        return _policy_objects(type(self), "authentication_classes")

    def get_permissions(self):
        return _policy_objects(type(self), "permission_classes")

    def check_permissions(self, request) -> None:
        # OPTIONS tells only the methods an endpoint allows (at the base, the public
        # CapabilityStatement): no token needed, as for a CORS preflight, which has none.
        if request.method != "OPTIONS":
            super().check_permissions(request)

    def dispatch(self, request, *args, **kwargs):
        # Absolute references under the base this request was addressed to are ours, those
        # under another base are not (search.html#reference), FHIR_BASE_URL set or not. Worked
        # out once a request: Django checks the Host header against ALLOWED_HOSTS each time.
        self.base = base_url(request)
        with search_reference.serving(self.base):
            return super().dispatch(request, *args, **kwargs)

    def options(self, request, *args, **kwargs):
        """OPTIONS: 200 and the ``Allow`` header, no body (RFC 9110 §9.3.7)."""
        return Response(None, status=200)

    def context(self, request) -> interactions.Context:
        prefer_return, strict = interactions.parse_prefer(request.META.get("HTTP_PREFER"))
        base = self.base
        return interactions.Context(
            base=base,
            prefer_return=prefer_return,
            strict=strict,
            url=base + request.path.split("/fhir", 1)[1].rstrip("/"),
            method=request.method,
        )

    @staticmethod
    def answer(answer: interactions.Answer) -> Response:
        return Response(answer.body, status=answer.status, headers=answer.headers)


class MetadataView(FHIRView):
    """GET [base]/metadata: open to all, as clients read it before they authenticate."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    def get(self, request):
        return Response(capability_statement(self.base))


class SystemView(FHIRView):
    """POST [base] with a transaction or batch Bundle; GET [base]?… a system-level search."""

    def post(self, request):
        return Response(bundles.process(self.context(request), request.data))

    def options(self, request, *args, **kwargs):
        """OPTIONS [base]: the CapabilityStatement, as the conformance interaction of FHIR
        DSTU1 was and as older clients still ask (hl7.org/fhir/R4B/http.html#capabilities)."""
        return Response(capability_statement(self.base))

    def get(self, request):
        ctx = self.context(request)
        return self.answer(interactions.search_system(ctx, query_items(request)))


class SystemSearchView(FHIRView):
    """POST [base]/_search with form-encoded parameters (search.html#Introduction)."""

    parser_classes = [FormParser, FHIRJSONParser, JSONParser]

    def post(self, request):
        items = query_items(request)
        if hasattr(request.data, "lists"):
            items += [
                (k, v) for k, vs in request.data.lists() for v in vs if k not in FORMAT_PARAMS
            ]
        # The links are GET searches, [base]?…, which a client can follow.
        ctx = replace(self.context(request), url=self.context(request).base)
        return self.answer(interactions.search_system(ctx, items))


class SystemHistoryView(FHIRView):
    def get(self, request):
        ctx = self.context(request)
        return self.answer(interactions.history(ctx, dict(query_string.items(request))))


class TypeView(FHIRView):
    """[base]/[type]: search, create, and the conditional update/patch/delete."""

    def get(self, request, resource_type: str):
        ctx = self.context(request)
        return self.answer(interactions.search(ctx, resource_type, query_items(request)))

    def post(self, request, resource_type: str):
        ctx = self.context(request)
        if_none_exist = self._if_none_exist(request)
        return self.answer(interactions.create(ctx, resource_type, request.data, if_none_exist))

    @staticmethod
    def _if_none_exist(request) -> str | None:
        """The search of a conditional create (hl7.org/fhir/R4B/http.html#ccreate).

        The specification sends it in ``If-None-Exist``; fhirpy (``get_or_create``) and Aidbox
        send it as the query of the create, ``POST [base]/[type]?[search]``. Ignoring that query
        would create a duplicate on every retry, so it is the condition too (but not both at once).
        """
        header = request.META.get("HTTP_IF_NONE_EXIST")
        query = condition(request)
        if header and query:
            raise BadRequest(
                "Give a conditional create's search once: in If-None-Exist or in the URL, not both"
            )
        return header or query or None

    def put(self, request, resource_type: str):
        query = self._condition(request, "update")
        ctx = self.context(request)
        return self.answer(
            interactions.conditional_update(
                ctx,
                resource_type,
                query,
                request.data,
                request.META.get("HTTP_IF_MATCH"),
                request.META.get("HTTP_IF_NONE_MATCH"),
            )
        )

    def patch(self, request, resource_type: str):
        query = self._condition(request, "patch")
        ctx = self.context(request)
        if_match = request.META.get("HTTP_IF_MATCH")
        return self.answer(
            interactions.conditional_patch(ctx, resource_type, query, request.data, if_match)
        )

    def delete(self, request, resource_type: str):
        query = self._condition(request, "delete")
        return self.answer(
            interactions.conditional_delete(self.context(request), resource_type, query)
        )

    @staticmethod
    def _condition(request, action: str) -> str:
        query = condition(request)
        if not query:
            raise BadRequest(
                f"A conditional {action} needs search parameters: [base]/[type]?[search]"
            )
        return query


class TypeSearchView(FHIRView):
    """POST [base]/[type]/_search with form-encoded parameters (search.html#Introduction)."""

    parser_classes = [FormParser, FHIRJSONParser, JSONParser]

    def post(self, request, resource_type: str):
        items = query_items(request)
        if hasattr(request.data, "lists"):
            items += [
                (k, v) for k, vs in request.data.lists() for v in vs if k not in FORMAT_PARAMS
            ]
        # The Bundle's links are GET searches of the type, [base]/[type]?…: a GET of
        # [base]/[type]/_search?… is not a FHIR interaction (http.html#search).
        ctx = self.context(request)
        ctx = replace(ctx, url=f"{ctx.base}/{resource_type}")
        return self.answer(interactions.search(ctx, resource_type, items))


class TypeHistoryView(FHIRView):
    def get(self, request, resource_type: str):
        ctx = self.context(request)
        return self.answer(
            interactions.history(ctx, dict(query_string.items(request)), resource_type)
        )


class InstanceView(FHIRView):
    """[base]/[type]/[id]: read, update, patch, delete."""

    def get(self, request, resource_type: str, logical_id: str):
        return self.answer(
            interactions.read(
                self.context(request),
                resource_type,
                logical_id,
                request.META.get("HTTP_IF_NONE_MATCH"),
                request.META.get("HTTP_IF_MODIFIED_SINCE"),
            )
        )

    def put(self, request, resource_type: str, logical_id: str):
        return self.answer(
            interactions.update(
                self.context(request),
                resource_type,
                logical_id,
                request.data,
                request.META.get("HTTP_IF_MATCH"),
                request.META.get("HTTP_IF_NONE_MATCH"),
            )
        )

    def patch(self, request, resource_type: str, logical_id: str):
        if_match = request.META.get("HTTP_IF_MATCH")
        return self.answer(
            interactions.patch(
                self.context(request), resource_type, logical_id, request.data, if_match
            )
        )

    def delete(self, request, resource_type: str, logical_id: str):
        if_match = request.META.get("HTTP_IF_MATCH")
        return self.answer(
            interactions.delete(self.context(request), resource_type, logical_id, if_match)
        )


class InstanceHistoryView(FHIRView):
    def get(self, request, resource_type: str, logical_id: str):
        ctx = self.context(request)
        params = dict(query_string.items(request))
        return self.answer(interactions.history(ctx, params, resource_type, logical_id))


class VersionView(FHIRView):
    def get(self, request, resource_type: str, logical_id: str, version: str):
        return self.answer(
            interactions.vread(self.context(request), resource_type, logical_id, version)
        )


def operation_items(request) -> list[tuple[str, str]]:
    """An operation's input: the URL's parameters, and for a POST a form or a Parameters body."""
    items = query_items(request)
    if request.method == "POST" and request.data:
        if hasattr(request.data, "lists"):
            items += [
                (k, v) for k, vs in request.data.lists() for v in vs if k not in FORMAT_PARAMS
            ]
        else:
            items += operations.parameter_items(request.data)
    return items


class EverythingView(FHIRView):
    """[base]/Patient/[id]/$everything (hl7.org/fhir/R4B/patient-operation-everything.html)."""

    parser_classes = [FormParser, FHIRJSONParser, JSONParser]

    def get(self, request, logical_id: str):
        ctx = self.context(request)
        return self.answer(everything.everything(ctx, logical_id, operation_items(request)))

    post = get


class LastnView(FHIRView):
    """[base]/Observation/$lastn (hl7.org/fhir/R4B/observation-operation-lastn.html)."""

    parser_classes = [FormParser, FHIRJSONParser, JSONParser]

    def get(self, request):
        return self.answer(lastn.lastn(self.context(request), operation_items(request)))

    post = get


class UnknownOperationView(FHIRView):
    """[base]/[type]/$op and [base]/[type]/[id]/$op: an operation another app registered
    (``operations.register``, e.g. the twins app's Patient/[id]/$twin), or a 404."""

    parser_classes = [FormParser, FHIRJSONParser, JSONParser]

    def _unknown(self, request, *args, operation: str, **kwargs):
        extension = operations.EXTENSIONS.get((kwargs.get("resource_type", ""), operation))
        logical_id = kwargs.get("logical_id")
        if (
            extension is not None
            and extension.instance == (logical_id is not None)
            and request.method in ("GET", "POST")
        ):
            items = operation_items(request)
            return self.answer(extension.handler(self.context(request), logical_id, items))
        if operation == "everything" and kwargs.get("resource_type") == "Patient":
            raise NotFound(
                "Patient/$everything for all patients is not supported:"
                " use [base]/Patient/[id]/$everything",
                code="not-supported",
            )
        raise NotFound(
            f"The operation ${operation} is not supported on {request.path}", code="not-supported"
        )

    get = post = put = patch = delete = _unknown

    def options(self, request, *args, operation: str, **kwargs):
        extension = operations.EXTENSIONS.get((kwargs.get("resource_type", ""), operation))
        if extension is None or extension.instance != (kwargs.get("logical_id") is not None):
            return self._unknown(request, *args, operation=operation, **kwargs)
        self.headers["Allow"] = "GET, POST, OPTIONS"
        return Response(None, status=200)


class UnknownView(FHIRView):
    """Any other path under /fhir: a 404 OperationOutcome, never an HTML page."""

    permission_classes = [AllowAny]

    def _unknown(self, request, *args, **kwargs):
        raise NotFound(f"{request.method} {request.path} is not a FHIR endpoint of this server")

    get = post = put = patch = delete = options = _unknown
