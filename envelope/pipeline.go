package envelope

import (
	"io"
	"sync"
)

// job is one batch of consecutive frames moving through a pipeline.
type job struct {
	firstSeq uint32 // sequence number of the first frame
	in       []byte // plaintext (encrypt) or frames (decrypt)
	out      []byte // frames (encrypt) or plaintext (decrypt)
	final    bool   // the batch ends with the final frame
	single   bool   // decrypt: a non-framed body
	borrowed bool   // in is the caller's slice: never written or cleared
	err      error  // set by the worker, or by the producer for an error job
	done     chan struct{}
	src      io.ReaderAt // encrypt: the worker reads its input from here
	srcOff   int64       // where the job's input starts (encrypt: in src; range: plaintext offset)
	srcLen   int         // range: plaintext bytes of the job
	inCap    int         // buffer sizes, allocated on first use
	outCap   int
}

// pipeline runs jobs on a fixed set of workers and hands them back in the
// order they were submitted. Its memory is fixed: depth jobs, each with
// buffers of the capacities given, allocated once.
type pipeline struct {
	work  chan *job
	order chan *job
	free  chan *job
	wg    sync.WaitGroup
	// bufBytes is the most memory its job buffers take: depth jobs of
	// inCap+outCap bytes.
	bufBytes int
}

// newPipeline starts workers goroutines. newWorker is called once per worker
// and returns the function that processes a job (so each worker can hold its
// own cipher state). adopted jobs made by the caller beforehand count
// towards depth: they will be submitted and put back like the others.
func newPipeline(workers, depth, inCap, outCap, adopted int, newWorker func() func(*job)) *pipeline {
	p := &pipeline{
		work:  make(chan *job, depth),
		order: make(chan *job, depth),
		free:  make(chan *job, depth),

		bufBytes: depth * (inCap + outCap),
	}
	for i := adopted; i < depth; i++ {
		p.free <- &job{inCap: inCap, outCap: outCap}
	}
	for i := 0; i < workers; i++ {
		process := newWorker()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.work {
				process(j)
				close(j.done)
			}
		}()
	}
	return p
}

// get returns a free job, reset, or nil if stop is closed first.
func (p *pipeline) get(stop <-chan struct{}) *job {
	select {
	case j := <-p.free:
		if j.in == nil {
			j.in, j.out = getBuf(j.inCap), getBuf(j.outCap)
		}
		j.in, j.out = j.in[:0], j.out[:0]
		j.final, j.single, j.err, j.firstSeq, j.src = false, false, nil, 0, nil
		j.done = make(chan struct{})
		return j
	case <-stop:
		return nil
	}
}

// submit queues j for a worker and for the consumer, in order.
func (p *pipeline) submit(j *job) {
	p.order <- j
	p.work <- j
}

// fail queues a job that carries only err, in order after what came before.
func (p *pipeline) fail(j *job, err error) {
	j.err = err
	close(j.done)
	p.order <- j
}

// put returns a consumed job to the free list.
func (p *pipeline) put(j *job) { p.free <- j }

// closeInput ends submission: workers stop once the queue is drained, and
// the consumer sees the order channel closed after the last job.
func (p *pipeline) closeInput() {
	close(p.work)
	close(p.order)
}

// wait blocks until every worker has stopped, then recycles the buffers of
// every job back in the free list (the others are the consumer's).
func (p *pipeline) wait() {
	p.wg.Wait()
	for {
		select {
		case j := <-p.free:
			putBuf(j.in)
			putBuf(j.out)
			j.in, j.out = nil, nil
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
