"""ray.util.state.exception: the error a state API call raises when it cannot answer."""


class RayStateApiException(Exception):
    pass


__all__ = ["RayStateApiException"]
