package monitor

import "strings"

// ModelFromArgs returns the model a worker serves, from its command line:
// --served-model-name (the name clients ask for, as in vLLM) wins over
// --model, -m and their =forms. It returns nil when none is given.
func ModelFromArgs(args []string) *string {
	var model, served *string
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, flag := range []string{"--served-model-name", "--model", "-m"} {
			var v string
			var ok bool
			if a == flag && i+1 < len(args) {
				v, ok = args[i+1], true
			} else if rest, found := strings.CutPrefix(a, flag+"="); found {
				v, ok = rest, true
			}
			if !ok || v == "" || strings.HasPrefix(v, "-") {
				continue
			}
			v = strings.Clone(v)
			if flag == "--served-model-name" {
				served = &v
			} else if model == nil {
				model = &v
			}
			break
		}
	}
	if served != nil {
		return served
	}
	return model
}
