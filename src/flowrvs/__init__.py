"""flowrvs: referring video object segmentation by flow matching (FlowRVS, arXiv 2510.06139)."""

__version__ = "0.1.0"

__all__ = ["FlowRVSPipeline", "FlowRVSPipelineOutput", "FlowRVSError", "__version__"]


def __getattr__(name: str):
    # The pipeline pulls in torch and diffusers; import it only when asked for.
    if name == "FlowRVSPipeline":
        from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline

        return FlowRVSPipeline
    if name == "FlowRVSPipelineOutput":
        from flowrvs.pipelines.pipeline_output import FlowRVSPipelineOutput

        return FlowRVSPipelineOutput
    if name == "FlowRVSError":
        from flowrvs.errors import FlowRVSError

        return FlowRVSError
    raise AttributeError(name)
