package relay

// PipelineMinBytes is pipelineMinBytes, for the handler tests that need an
// event decoded on its own goroutine.
const PipelineMinBytes = pipelineMinBytes
