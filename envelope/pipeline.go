package envelope

import "sync"

// jobBuffers is what every pipeline job has: its input and output buffers
// and how it ended. The job kinds (sealJob, openJob, rangeJob) add what
// their batch of frames is.
type jobBuffers struct {
	in     []byte // plaintext (encrypt) or frames (decrypt)
	out    []byte // frames (encrypt) or plaintext (decrypt)
	err    error  // set by the worker, or by the producer for an error job
	done   chan struct{}
	inCap  int // buffer sizes, allocated on first use
	outCap int
}

func (b *jobBuffers) buffers() *jobBuffers { return b }

// pipelineJob is a pointer to a job kind J.
type pipelineJob[J any] interface {
	*J
	buffers() *jobBuffers
}

// pipeline runs jobs on a fixed set of workers and hands them back in the
// order they were submitted. Its memory is fixed: depth jobs, each with
// buffers of the capacities given, allocated once.
type pipeline[J any, P pipelineJob[J]] struct {
	work  chan P
	order chan P
	free  chan P
	wg    sync.WaitGroup
	// bufBytes is the most memory its job buffers take: depth jobs of
	// inCap+outCap bytes.
	bufBytes int
}

// newPipeline starts workers goroutines. newWorker is called once per worker
// and returns the function that processes a job (so each worker can hold its
// own cipher state). adopted jobs made by the caller beforehand count
// towards depth: they will be submitted and put back like the others.
func newPipeline[J any, P pipelineJob[J]](workers, depth, inCap, outCap, adopted int, newWorker func() func(P)) *pipeline[J, P] {
	p := &pipeline[J, P]{
		work:  make(chan P, depth),
		order: make(chan P, depth),
		free:  make(chan P, depth),

		bufBytes: depth * (inCap + outCap),
	}
	for i := adopted; i < depth; i++ {
		j := P(new(J))
		b := j.buffers()
		b.inCap, b.outCap = inCap, outCap
		p.free <- j
	}
	for i := 0; i < workers; i++ {
		process := newWorker()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.work {
				process(j)
				close(j.buffers().done)
			}
		}()
	}
	return p
}

// get returns a free job, reset (its kind's fields zero, its buffers
// empty), or nil if stop is closed first.
func (p *pipeline[J, P]) get(stop <-chan struct{}) P {
	select {
	case j := <-p.free:
		old := *j.buffers()
		if old.in == nil && old.inCap > 0 {
			old.in = getBuf(old.inCap)
		}
		if old.out == nil {
			old.out = getBuf(old.outCap)
		}
		var zero J
		*j = zero
		b := j.buffers()
		b.in, b.out, b.inCap, b.outCap = old.in[:0], old.out[:0], old.inCap, old.outCap
		b.done = make(chan struct{})
		return j
	case <-stop:
		return nil
	}
}

// submit queues j for a worker and for the consumer, in order.
func (p *pipeline[J, P]) submit(j P) {
	p.order <- j
	p.work <- j
}

// fail queues a job that carries only err, in order after what came before.
func (p *pipeline[J, P]) fail(j P, err error) {
	b := j.buffers()
	b.err = err
	close(b.done)
	p.order <- j
}

// put returns a consumed job to the free list.
func (p *pipeline[J, P]) put(j P) { p.free <- j }

// closeInput ends submission: workers stop once the queue is drained, and
// the consumer sees the order channel closed after the last job.
func (p *pipeline[J, P]) closeInput() {
	close(p.work)
	close(p.order)
}

// wait blocks until every worker has stopped, then recycles the buffers of
// every job back in the free list (the others are the consumer's).
func (p *pipeline[J, P]) wait() {
	p.wg.Wait()
	for {
		select {
		case j := <-p.free:
			b := j.buffers()
			putBuf(b.in)
			putBuf(b.out)
			b.in, b.out = nil, nil
		default:
			return
		}
	}
}

// bufPools recycle job buffers across messages, one pool per capacity, so a
// stream of small messages does not allocate megabytes each.
var bufPools sync.Map // int -> *sync.Pool

func getBuf(n int) []byte {
	if p, ok := bufPools.Load(n); ok {
		if b, ok := p.(*sync.Pool).Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, n)
}

// putBuf zeroes b (it held plaintext) and returns it to its pool.
func putBuf(b []byte) {
	if b == nil {
		return
	}
	clear(b[:cap(b)])
	n := cap(b)
	p, _ := bufPools.LoadOrStore(n, &sync.Pool{})
	p.(*sync.Pool).Put(&b)
}
