"""The REST API: Tornado handlers over the domain packages, problem+json errors, the OpenAPI document."""
