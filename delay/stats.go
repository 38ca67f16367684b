package delay

import "context"

// WheelPending is the number of wheel messages scheduled and not yet
// forwarded, across replicas (the index in Redis); 0 without a wheel. The
// console's stats/delay reports it. Level and native messages wait in
// Pulsar and are not counted here.
func (e *Engine) WheelPending(ctx context.Context) (int64, error) {
	if e.index == nil {
		return 0, nil
	}
	return e.index.Len(ctx)
}
