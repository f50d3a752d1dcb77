"""What every API resource configures the same way: where it is and how hard the client tries."""

import dagster as dg

from consodam_pipeline.clients.http import ResilientHttp, RetryPolicy


class HttpApiResource(dg.ConfigurableResource):
    url: str
    timeout_s: float = 20.0
    max_attempts: int = 6
    max_concurrency: int = 4
    retry_base_delay_s: float = 0.2

    def http(self, secret: str) -> ResilientHttp:
        """The resilient HTTP core for this API; `secret` is redacted from every error and log."""
        return ResilientHttp(
            self.url,
            timeout_s=self.timeout_s,
            policy=RetryPolicy(max_attempts=self.max_attempts, base_delay=self.retry_base_delay_s),
            max_concurrency=self.max_concurrency,
            secrets=[secret],
        )
